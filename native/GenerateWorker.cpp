#include "GenerateWorker.h"

#include <chrono>
#include <cstring>

#include "AddonModel.h"

namespace {

double Num(Napi::Object o, const char* key, double def) {
  return o.Has(key) && o.Get(key).IsNumber() ? o.Get(key).As<Napi::Number>().DoubleValue() : def;
}

}  // namespace

// request: { n, maxTokens, temperature, topK, topP, minP, seed, stop: string[], ignoreEos,
//            layers: Int32Array, pool: 0 last | 1 mean, outputs: Float32Array[] (n x nEmbd each),
//            seqs?: Int32Array (candidate -> sequence; [0] is the prefilled one), keep?: boolean
//            (leave every candidate's cells in the cache: a chat commits one), monitor? }
GenerateWorker::GenerateWorker(Napi::Env env, AddonContext* target, Napi::Object request, Napi::Value onToken)
    : Napi::AsyncProgressQueueWorker<GenerateEvent>(env, "SafetyLensGenerate"),
      job_(env, target, request, onToken),
      target_(target) {
  if (target->prefilledTokens == 0 || target->lastLogitsIndex < 0) {
    throw Napi::Error::New(env, "generate needs a prefilled prompt");
  }
  const int32_t nLayer = L.llama_model_n_layer(target->model->model);
  const int32_t nEmbd = L.llama_model_n_embd(target->model->model);
  const double n = Num(request, "n", 1);
  if (n < 1 || n > target->sequences) throw Napi::RangeError::New(env, "n is out of range");
  maxTokens_ = static_cast<uint32_t>(Num(request, "maxTokens", 16));
  if (maxTokens_ < 1 || target->prefilledTokens + static_cast<uint64_t>(maxTokens_) > target->contextSize) {
    throw Napi::RangeError::New(env, "prompt + n x maxTokens does not fit the context");
  }
  ignoreEos_ = request.Has("ignoreEos") && request.Get("ignoreEos").ToBoolean().Value();
  if (request.Has("stop") && request.Get("stop").IsArray()) {
    Napi::Array s = request.Get("stop").As<Napi::Array>();
    for (uint32_t i = 0; i < s.Length(); i++) {
      std::string v = s.Get(i).As<Napi::String>().Utf8Value();
      if (!v.empty()) stops_.push_back(v);
    }
  }
  const double temperature = Num(request, "temperature", 0.8);
  const double topK = Num(request, "topK", 40), topP = Num(request, "topP", 0.95), minP = Num(request, "minP", 0.05);
  const uint32_t seed = static_cast<uint32_t>(Num(request, "seed", 0));
  cands_.resize(static_cast<size_t>(n));

  // candidate sequences: candidate 0 continues the prompt's sequence
  seqs_.resize(cands_.size());
  Napi::Value sv = request.Get("seqs");
  if (sv.IsTypedArray()) {
    if (sv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array || sv.As<Napi::Int32Array>().ElementLength() != cands_.size()) {
      throw Napi::TypeError::New(env, "seqs must be an Int32Array with one sequence per candidate");
    }
    Napi::Int32Array s = sv.As<Napi::Int32Array>();
    for (size_t c = 0; c < cands_.size(); c++) {
      if (s[c] < 0 || s[c] >= static_cast<int32_t>(target->sequences)) throw Napi::RangeError::New(env, "a sequence id is out of range");
      for (size_t d = 0; d < c; d++) {
        if (s[d] == s[c]) throw Napi::RangeError::New(env, "sequence ids must differ");
      }
      seqs_[c] = s[c];
    }
  } else {
    for (size_t c = 0; c < cands_.size(); c++) seqs_[c] = static_cast<int32_t>(c) + (c == 0 ? target->prefilledSeq : 0);
  }
  if (seqs_[0] != target->prefilledSeq) throw Napi::RangeError::New(env, "candidate 0 must continue the prefilled sequence");
  keep_ = request.Has("keep") && request.Get("keep").ToBoolean().Value();

  // response hidden states: one row per candidate per requested layer
  plan_.Parse(env, request, nLayer, nEmbd, cands_.size(), POOL_MEAN, true);
  plan_.SetEarlyExit(false);
  Napi::Value mv = request.Get("monitor");
  if (mv.IsObject()) {
    monitor_.Parse(env, mv.As<Napi::Object>(), nEmbd, plan_.Slots(), cands_.size());
    plan_.SetScorer(monitor_.Slot(), monitor_.Weights(), monitor_.Bias());
  }

  // samplers last: nothing below throws, so they are always freed by the destructor
  for (size_t c = 0; c < cands_.size(); c++) {
    llama_sampler* chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params());
    if (temperature <= 0) {
      L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy());
    } else {
      if (topK > 0) L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(static_cast<int32_t>(topK)));
      if (topP < 1) L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(static_cast<float>(topP), 1));
      if (minP > 0) L.llama_sampler_chain_add(chain, L.llama_sampler_init_min_p(static_cast<float>(minP), 1));
      L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(static_cast<float>(temperature)));
      L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed + static_cast<uint32_t>(c)));
    }
    cands_[c].sampler = chain;
    cands_[c].logitsIndex = target->lastLogitsIndex;
  }
}

GenerateWorker::~GenerateWorker() {
  for (auto& c : cands_) {
    if (c.sampler) L.llama_sampler_free(c.sampler);
  }
}

void GenerateWorker::Execute(const ExecutionProgress& progress) {
  llama_context* ctx = target_->ctx;
  const llama_vocab* vocab = target_->model->vocab;
  llama_memory_t mem = L.llama_get_memory(ctx);
  const uint32_t nPrompt = target_->prefilledTokens;
  const size_t n = cands_.size();
  // candidate 0 continues the prompt's sequence; the others start as copies of it (shared cells)
  for (size_t c = 1; c < n; c++) {
    L.llama_memory_seq_rm(mem, seqs_[c], -1, -1);
    L.llama_memory_seq_cp(mem, seqs_[0], seqs_[c], -1, -1);
  }
  llama_batch batch = L.llama_batch_init(static_cast<int32_t>(n), 0, 1);
  const bool capture = plan_.Active();
  const bool monitored = monitor_.Active();
  struct Pending {
    size_t ci;
    llama_token token;
    std::string piece;
    size_t textBefore;
    bool decoded;
  };
  std::vector<Pending> pending;

  while (true) {
    if (target_->cancelled) {
      for (auto& c : cands_) {
        if (c.finish.empty()) c.finish = "aborted";
      }
      break;
    }
    // sample one token for every running candidate; all sampled tokens are then decoded
    // (also a candidate's final token when capture needs its hidden state)
    int32_t nb = 0;
    plan_.runs.clear();
    pending.clear();
    for (size_t ci = 0; ci < n; ci++) {
      Candidate& c = cands_[ci];
      if (!c.finish.empty()) continue;
      llama_token tok = L.llama_sampler_sample(c.sampler, ctx, c.logitsIndex);
      if (!ignoreEos_ && L.llama_vocab_is_eog(vocab, tok)) {
        c.finish = "eos";
        continue;
      }
      c.tokens.push_back(tok);
      std::string piece = LlamaTokenPiece(vocab, tok, false);
      const size_t before = c.text.size();
      c.text += piece;
      for (const auto& s : stops_) {
        size_t from = before >= s.size() ? before - s.size() + 1 : 0;
        size_t at = c.text.find(s, from);
        if (at != std::string::npos) {
          c.text.resize(at);
          c.finish = "stop";
          break;
        }
      }
      if (c.finish.empty() && c.tokens.size() >= maxTokens_) c.finish = "length";
      const bool decode = c.finish.empty() || capture;  // a finished one is read only when capturing
      // a monitored token is shown only once the monitor has read it; otherwise at once
      if (monitored) pending.push_back({ci, tok, piece, before, decode});
      else {
        GenerateEvent ev{static_cast<int32_t>(ci), tok, piece};
        progress.Send(&ev, 1);
      }
      if (!decode) continue;
      batch.token[nb] = tok;
      batch.pos[nb] = static_cast<llama_pos>(nPrompt + c.tokens.size() - 1);
      batch.n_seq_id[nb] = 1;
      batch.seq_id[nb][0] = static_cast<llama_seq_id>(seqs_[ci]);
      batch.logits[nb] = 1;
      c.logitsIndex = nb;
      plan_.runs.push_back({nb, nb, 1, static_cast<int32_t>(ci), static_cast<int32_t>(c.tokens.size() - 1)});
      nb++;
    }
    if (nb == 0) break;
    batch.n_tokens = nb;
    plan_.BeginDecode(nb, nb);
    LlamaLogClear();
    target_->plan = capture ? &plan_ : nullptr;
    auto t0 = std::chrono::steady_clock::now();
    int32_t rc = L.llama_decode(ctx, batch);
    decodeUs_ += std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
    target_->plan = nullptr;
    steps_++;
    if (rc == 2 || (rc != 0 && target_->cancelled)) {
      // aborted inside this step: its tokens were sampled but not all read
      for (auto& c : cands_) {
        if (c.finish.empty()) c.finish = "aborted";
      }
      break;
    }
    if (rc == 1) {
      code_ = "CONTEXT_FULL";
      SetError("the context has no room for another token (no KV cache slot); dispose other chats, lower maxTokens, or load the model with a larger contextSize");
      break;
    }
    if (rc != 0) {
      std::string log = LlamaLogLastErrors();
      code_ = "DECODE_FAILED";
      SetError("llama_decode failed with code " + std::to_string(rc) + (log.empty() ? "" : ": " + log));
      break;
    }
    if (capture) {
      std::string err = plan_.DecodeError();
      if (!err.empty()) {
        code_ = "DECODE_FAILED";
        SetError(err);
        break;
      }
    }
    for (const CaptureRun& r : plan_.runs) {
      cands_[r.text].decoded++;
      cands_[r.text].inCache++;
      cands_[r.text].cached.push_back(batch.token[r.tokenRow]);
    }
    if (monitored) {
      for (const Pending& p : pending) {
        Candidate& c = cands_[p.ci];
        if (p.decoded && monitor_.Push(p.ci, plan_.ItemScore(static_cast<int32_t>(p.ci)))) {
          // flagged: the token that tipped the monitor is not shown, and the candidate stops
          c.tokens.pop_back();
          c.text.resize(std::min(c.text.size(), p.textBefore));
          c.finish = "flagged";
          continue;
        }
        GenerateEvent ev{static_cast<int32_t>(p.ci), p.token, p.piece};
        progress.Send(&ev, 1);
      }
    }
  }
  if (capture && plan_.Pool() == POOL_MEAN) {
    for (size_t ci = 0; ci < n; ci++) plan_.FinishMean(static_cast<int32_t>(ci), static_cast<double>(cands_[ci].decoded));
  }
  L.llama_batch_free(batch);
  if (!keep_) L.llama_memory_clear(mem, true);
  target_->prefilledTokens = 0;
  target_->lastLogitsIndex = -1;
}

void GenerateWorker::OnProgress(const GenerateEvent* data, size_t count) {
  Napi::Env env = Env();
  if (!job_.JsAlive(env)) return;
  for (size_t i = 0; i < count; i++) {
    job_.CallBack(env, {Napi::Number::New(env, data[i].candidate), Napi::Number::New(env, data[i].token),
                        Napi::Buffer<char>::Copy(env, data[i].piece.data(), data[i].piece.size())});
  }
}

void GenerateWorker::OnOK() {
  Napi::Env env = Env();
  job_.Resolve(env, [&] {
    Napi::Object result = Napi::Object::New(env);
    Napi::Array list = Napi::Array::New(env, cands_.size());
    for (size_t i = 0; i < cands_.size(); i++) {
      const Candidate& c = cands_[i];
      Napi::Object o = Napi::Object::New(env);
      Napi::Int32Array toks = Napi::Int32Array::New(env, c.tokens.size());
      std::copy(c.tokens.begin(), c.tokens.end(), toks.Data());
      o.Set("tokens", toks);
      o.Set("text", Napi::Buffer<char>::Copy(env, c.text.data(), c.text.size()));
      o.Set("finishReason", c.finish.empty() ? "length" : c.finish);
      o.Set("decoded", c.decoded);
      o.Set("inCache", c.inCache);
      Napi::Int32Array cached = Napi::Int32Array::New(env, c.cached.size());
      std::copy(c.cached.begin(), c.cached.end(), cached.Data());
      o.Set("cached", cached);
      if (monitor_.Active()) {
        const std::vector<float>& sc = monitor_.Scores(i);
        Napi::Float32Array scores = Napi::Float32Array::New(env, sc.size());
        std::copy(sc.begin(), sc.end(), scores.Data());
        o.Set("scores", scores);
        o.Set("flaggedAt", monitor_.FlaggedAt(i));
        o.Set("aggregate", monitor_.Aggregate(i));
      }
      list.Set(static_cast<uint32_t>(i), o);
    }
    result.Set("candidates", list);
    result.Set("decodeMs", decodeUs_ / 1000.0);
    result.Set("steps", steps_);
    return result;
  });
}

void GenerateWorker::OnError(const Napi::Error& e) { job_.Reject(Env(), e.Message(), code_); }
