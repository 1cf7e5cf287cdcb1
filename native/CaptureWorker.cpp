#include "CaptureWorker.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "AddonModel.h"

namespace {
enum Pool { POOL_LAST = 0, POOL_MEAN = 1, POOL_TOKENS = 2 };
}

CaptureWorker::CaptureWorker(Napi::Env env, AddonContext* target, Mode mode, Napi::Object request,
                             Napi::Value onProgress)
    : Napi::AsyncProgressWorker<CaptureProgress>(env, "SafetyLensCapture"),
      target_(target),
      mode_(mode),
      deferred_(Napi::Promise::Deferred::New(env)) {
  const int32_t nLayer = L.llama_model_n_layer(target->model->model);
  const int32_t nEmbd = L.llama_model_n_embd(target->model->model);
  const int32_t nVocab = L.llama_vocab_n_tokens(target->model->vocab);

  if (!request.Get("tokens").IsTypedArray() || request.Get("tokens").As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(env, "request.tokens must be an Int32Array");
  }
  if (!request.Get("offsets").IsTypedArray() || request.Get("offsets").As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "request.offsets must be a Uint32Array");
  }
  Napi::Int32Array tokens = request.Get("tokens").As<Napi::Int32Array>();
  Napi::Uint32Array offsets = request.Get("offsets").As<Napi::Uint32Array>();
  if (offsets.ElementLength() < 2) throw Napi::RangeError::New(env, "request has no texts");
  nTexts_ = static_cast<uint32_t>(offsets.ElementLength() - 1);
  tokens_ = tokens.Data();
  offsets_ = offsets.Data();
  nTokensAll_ = static_cast<uint32_t>(tokens.ElementLength());
  if (offsets_[0] != 0 || offsets_[nTexts_] != nTokensAll_) throw Napi::RangeError::New(env, "request.offsets do not span request.tokens");
  for (uint32_t i = 0; i < nTexts_; i++) {
    uint32_t len = offsets_[i + 1] - offsets_[i];
    if (offsets_[i + 1] < offsets_[i] || len == 0) throw Napi::RangeError::New(env, "every text needs at least one token");
    if (len > target->contextSize) throw Napi::RangeError::New(env, "a text is longer than the context");
  }
  for (uint32_t i = 0; i < nTokensAll_; i++) {
    if (tokens_[i] < 0 || tokens_[i] >= nVocab) throw Napi::RangeError::New(env, "token id out of range");
  }

  plan_.nEmbd = nEmbd;
  plan_.slotOfLayer.assign(nLayer, -1);
  if (mode == Mode::Capture) {
    if (!target->withCallback) throw Napi::Error::New(env, "this context was created without the capture callback");
    Napi::Int32Array layers = request.Get("layers").As<Napi::Int32Array>();
    Napi::Array outs = request.Get("outputs").As<Napi::Array>();
    plan_.pool = request.Get("pool").As<Napi::Number>().Int32Value();
    plan_.earlyExit = request.Get("earlyExit").ToBoolean().Value();
    if (plan_.pool < POOL_LAST || plan_.pool > POOL_TOKENS) throw Napi::RangeError::New(env, "unknown pool");
    plan_.nSlots = static_cast<int32_t>(layers.ElementLength());
    if (plan_.nSlots == 0 || outs.Length() != layers.ElementLength()) throw Napi::RangeError::New(env, "one output per layer is needed");
    const size_t rows = plan_.pool == POOL_TOKENS ? nTokensAll_ : nTexts_;
    for (int32_t s = 0; s < plan_.nSlots; s++) {
      int32_t layer = layers[s];
      if (layer == -1) {
        if (plan_.finalSlot != -1) throw Napi::RangeError::New(env, "duplicate layer");
        plan_.finalSlot = s;
      } else if (layer < 0 || layer >= nLayer) {
        throw Napi::RangeError::New(env, "layer out of range");
      } else {
        if (plan_.slotOfLayer[layer] != -1) throw Napi::RangeError::New(env, "duplicate layer");
        plan_.slotOfLayer[layer] = s;
      }
      Napi::Value o = outs.Get(s);
      if (!o.IsTypedArray() || o.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        throw Napi::TypeError::New(env, "outputs must be Float32Arrays");
      }
      Napi::Float32Array f = o.As<Napi::Float32Array>();
      if (f.ElementLength() != rows * nEmbd) throw Napi::RangeError::New(env, "an output buffer has the wrong size");
      plan_.out.push_back(f.Data());
    }
    if (plan_.pool == POOL_MEAN) {
      accStorage_.assign(static_cast<size_t>(plan_.nSlots) * nTexts_ * nEmbd, 0.0);
      for (int32_t s = 0; s < plan_.nSlots; s++) plan_.acc.push_back(accStorage_.data() + static_cast<size_t>(s) * nTexts_ * nEmbd);
    }
    plan_.offsets = offsets_;
    // The last layer and the final norm hold only the rows of tokens flagged as outputs.
    needOutputsForAll_ = plan_.pool != POOL_LAST && (plan_.finalSlot != -1 || plan_.slotOfLayer[nLayer - 1] != -1);
    plan_.seen.assign(plan_.nSlots, 0);
  } else {
    Napi::Value e = request.Get("embeddings");
    if (e.IsTypedArray()) {
      if (!target->embeddings) throw Napi::Error::New(env, "this context was created without embeddings");
      Napi::Float32Array f = e.As<Napi::Float32Array>();
      if (f.ElementLength() != static_cast<size_t>(nTexts_) * nEmbd) throw Napi::RangeError::New(env, "embeddings buffer has the wrong size");
      embeddingsOut_ = f.Data();
    }
    Napi::Value lt = request.Get("logitTokens");
    if (lt.IsTypedArray()) {
      Napi::Int32Array ids = lt.As<Napi::Int32Array>();
      for (size_t k = 0; k < ids.ElementLength(); k++) {
        if (ids[k] < 0 || ids[k] >= nVocab) throw Napi::RangeError::New(env, "logit token id out of range");
        logitTokens_.push_back(ids[k]);
      }
      if (target->embeddings) throw Napi::Error::New(env, "this context returns embeddings, not logits");
      Napi::Value lo = request.Get("logits");
      if (!lo.IsTypedArray() || lo.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
          lo.As<Napi::Float32Array>().ElementLength() != static_cast<size_t>(nTexts_) * logitTokens_.size()) {
        throw Napi::RangeError::New(env, "logits buffer has the wrong size");
      }
      logitsOut_ = lo.As<Napi::Float32Array>().Data();
    }
    Napi::Value sf = request.Get("scoreFrom");
    if (sf.IsTypedArray()) {
      if (target->embeddings) throw Napi::Error::New(env, "this context returns embeddings, not logits");
      if (sf.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || sf.As<Napi::Uint32Array>().ElementLength() != nTexts_) {
        throw Napi::TypeError::New(env, "scoreFrom must be a Uint32Array with one entry per text");
      }
      Napi::Value lp = request.Get("logprobs");
      if (!lp.IsTypedArray() || lp.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
          lp.As<Napi::Float64Array>().ElementLength() != nTexts_) {
        throw Napi::TypeError::New(env, "logprobs must be a Float64Array with one entry per text");
      }
      scoreFrom_ = sf.As<Napi::Uint32Array>().Data();
      for (uint32_t i = 0; i < nTexts_; i++) {
        if (scoreFrom_[i] < 1 || scoreFrom_[i] >= offsets_[i + 1] - offsets_[i]) throw Napi::RangeError::New(env, "scoreFrom must be within each text, after its first token");
      }
      logprobsOut_ = lp.As<Napi::Float64Array>().Data();
      std::fill(logprobsOut_, logprobsOut_ + nTexts_, 0.0);
    }
  }
  keep_ = request.Has("keep") && request.Get("keep").ToBoolean().Value();
  if (keep_) {
    if (nTexts_ != 1) throw Napi::RangeError::New(env, "a prefill takes exactly one text");
    plan_.earlyExit = false;  // generation needs the logits
  }
  requestRef_ = Napi::Persistent(request);
  if (onProgress.IsFunction()) onProgress_ = Napi::Persistent(onProgress.As<Napi::Function>());
  target_->Ref();
  target_->busy = true;
  target_->cancelled = false;
}

CaptureWorker::~CaptureWorker() {
  target_->busy = false;
  target_->Unref();
}

void CaptureWorker::Fail(const std::string& code, const std::string& message) {
  code_ = code;
  SetError(message);
}

bool CaptureWorker::DecodeOnce(llama_batch& batch, uint32_t nTokens) {
  batch.n_tokens = static_cast<int32_t>(nTokens);
  plan_.nTokens = static_cast<int32_t>(nTokens);
  plan_.nOutputs = 0;
  for (uint32_t k = 0; k < nTokens; k++) plan_.nOutputs += batch.logits[k] ? 1 : 0;
  plan_.nSeen = 0;
  plan_.stopped = false;
  std::fill(plan_.seen.begin(), plan_.seen.end(), 0);
  LlamaLogClear();
  target_->plan = mode_ == Mode::Capture ? &plan_ : nullptr;
  auto t0 = std::chrono::steady_clock::now();
  int32_t rc = L.llama_decode(target_->ctx, batch);
  decodeUs_ += std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  target_->plan = nullptr;
  if (rc == 2 || (rc != 0 && target_->cancelled)) {
    Fail("ABORTED", "The operation was aborted");
    return false;
  }
  if (rc != 0) {
    std::string log = LlamaLogLastErrors();
    Fail("DECODE_FAILED", "llama_decode failed with code " + std::to_string(rc) + (log.empty() ? "" : ": " + log));
    return false;
  }
  if (!plan_.error.empty()) {
    Fail("DECODE_FAILED", plan_.error);
    return false;
  }
  if (mode_ == Mode::Capture && plan_.nSeen != plan_.nSlots) {
    std::string missing;
    for (int32_t l = 0; l < static_cast<int32_t>(plan_.slotOfLayer.size()); l++) {
      int32_t s = plan_.slotOfLayer[l];
      if (s >= 0 && !plan_.seen[s]) missing += (missing.empty() ? "" : ", ") + ("l_out-" + std::to_string(l));
    }
    if (plan_.finalSlot >= 0 && !plan_.seen[plan_.finalSlot]) missing += (missing.empty() ? "" : ", ") + std::string("result_norm");
    Fail("DECODE_FAILED", "this model's compute graph has no tensor named " + missing +
                              "; capturing these layers is not supported for its architecture");
    return false;
  }
  return true;
}

void CaptureWorker::Execute(const ExecutionProgress& progress) {
  llama_context* ctx = target_->ctx;
  llama_memory_t mem = L.llama_get_memory(ctx);
  const uint32_t batchSize = target_->batchSize;
  const uint32_t maxSeqs = target_->sequences;
  const int32_t nEmbd = plan_.nEmbd;
  llama_batch batch = L.llama_batch_init(static_cast<int32_t>(batchSize), 0, 1);
  std::vector<int32_t> lastBatchIndex(nTexts_, -1);  // batch index of each text's last token (decode mode)
  uint32_t tokensDone = 0;
  target_->prefilledTokens = 0;  // any decode replaces what a prefill left
  target_->lastLogitsIndex = -1;
  int32_t keptIndex = -1;
  struct ScoreRow {
    int32_t batchIndex, text, target;
  };
  std::vector<ScoreRow> scoreRows;  // decode mode with scoreFrom: rows whose next-token log-probability is summed
  const int32_t nVocab = L.llama_vocab_n_tokens(target_->model->vocab);

  uint32_t i = 0;
  while (i < nTexts_) {
    if (target_->cancelled) {
      Fail("ABORTED", "The operation was aborted");
      break;
    }
    // A group shares one KV cache fill: texts packed up to one batch of tokens
    // (a longer text is a group of its own, decoded in several batches).
    auto len = [&](uint32_t t) { return offsets_[t + 1] - offsets_[t]; };
    uint32_t j = i + 1, total = len(i);
    if (total <= batchSize) {
      while (j < nTexts_ && j - i < maxSeqs && total + len(j) <= batchSize) total += len(j++);
    }
    L.llama_memory_clear(mem, true);

    uint32_t t = i, p = 0;
    bool ok = true;
    while (t < j && ok) {
      uint32_t n = 0;
      int32_t nOut = 0;
      plan_.runs.clear();
      scoreRows.clear();
      while (n < batchSize && t < j) {
        const uint32_t tl = len(t);
        const uint32_t take = std::min(tl - p, batchSize - n);
        const bool endsText = p + take == tl;
        for (uint32_t k = 0; k < take; k++) {
          const uint32_t idx = n + k;
          batch.token[idx] = tokens_[offsets_[t] + p + k];
          batch.pos[idx] = static_cast<llama_pos>(p + k);
          batch.n_seq_id[idx] = 1;
          batch.seq_id[idx][0] = static_cast<llama_seq_id>(t - i);
          const bool isLast = endsText && k == take - 1;
          batch.logits[idx] = (isLast || needOutputsForAll_) ? 1 : 0;
          if (scoreFrom_) {
            const uint32_t pos = p + k;
            if (pos + 1 >= scoreFrom_[t] && pos + 1 < tl) {
              batch.logits[idx] = 1;
              scoreRows.push_back({static_cast<int32_t>(idx), static_cast<int32_t>(t), tokens_[offsets_[t] + pos + 1]});
            }
          }
        }
        // rows the callback copies for this piece of text
        if (mode_ == Mode::Capture) {
          if (plan_.pool == POOL_LAST) {
            if (endsText) {
              int32_t outRow = nOut + (needOutputsForAll_ ? static_cast<int32_t>(take) - 1 : 0);
              plan_.runs.push_back({static_cast<int32_t>(n + take - 1), outRow, 1, static_cast<int32_t>(t), static_cast<int32_t>(tl - 1)});
            }
          } else {
            plan_.runs.push_back({static_cast<int32_t>(n), nOut, static_cast<int32_t>(take), static_cast<int32_t>(t), static_cast<int32_t>(p)});
          }
        }
        if (endsText) lastBatchIndex[t] = keptIndex = static_cast<int32_t>(n + take - 1);
        nOut += needOutputsForAll_ ? static_cast<int32_t>(take) : (endsText ? 1 : 0);
        n += take;
        p += take;
        if (endsText) {
          t++;
          p = 0;
        }
      }
      if (nOut == 0) batch.logits[n - 1] = 1;  // llama.cpp wants at least one output per batch
      ok = DecodeOnce(batch, n);
      if (ok && logprobsOut_) {
        for (const ScoreRow& r : scoreRows) {
          const float* lg = L.llama_get_logits_ith(ctx, r.batchIndex);
          if (!lg) {
            Fail("DECODE_FAILED", "llama.cpp returned no logits");
            ok = false;
            break;
          }
          float mx = lg[0];
          for (int32_t v = 1; v < nVocab; v++) mx = std::max(mx, lg[v]);
          double sum = 0;
          for (int32_t v = 0; v < nVocab; v++) sum += std::exp(static_cast<double>(lg[v] - mx));
          logprobsOut_[r.text] += static_cast<double>(lg[r.target] - mx) - std::log(sum);
        }
      }
      if (ok && (embeddingsOut_ || logitsOut_)) {
        for (uint32_t tt = i; tt < t; tt++) {
          if (lastBatchIndex[tt] < 0) continue;
          if (embeddingsOut_) {
            const float* e = L.llama_get_embeddings_ith(ctx, lastBatchIndex[tt]);
            if (!e) {
              Fail("DECODE_FAILED", "llama.cpp returned no embeddings");
              ok = false;
              break;
            }
            std::memcpy(embeddingsOut_ + static_cast<size_t>(tt) * nEmbd, e, sizeof(float) * nEmbd);
          }
          if (logitsOut_) {
            const float* lg = L.llama_get_logits_ith(ctx, lastBatchIndex[tt]);
            if (!lg) {
              Fail("DECODE_FAILED", "llama.cpp returned no logits");
              ok = false;
              break;
            }
            const size_t k = logitTokens_.size();
            for (size_t q = 0; q < k; q++) logitsOut_[static_cast<size_t>(tt) * k + q] = lg[logitTokens_[q]];
          }
          lastBatchIndex[tt] = -1;
        }
      }
      tokensDone += n;
      if (ok && j - i == 1 && t < j) {  // report progress inside a long text too
        CaptureProgress pr{i, tokensDone};
        progress.Send(&pr, 1);
      }
      if (ok && target_->cancelled) {
        Fail("ABORTED", "The operation was aborted");
        ok = false;
      }
    }
    if (!ok) break;
    if (mode_ == Mode::Capture && plan_.pool == POOL_MEAN) {
      for (int32_t s = 0; s < plan_.nSlots; s++) {
        for (uint32_t tt = i; tt < j; tt++) {
          const double inv = 1.0 / static_cast<double>(len(tt));
          const double* a = plan_.acc[s] + static_cast<size_t>(tt) * nEmbd;
          float* o = plan_.out[s] + static_cast<size_t>(tt) * nEmbd;
          for (int32_t e = 0; e < nEmbd; e++) o[e] = static_cast<float>(a[e] * inv);
        }
      }
    }
    i = j;
    CaptureProgress pr{i, tokensDone};
    progress.Send(&pr, 1);
  }
  if (keep_ && code_.empty() && i == nTexts_) {
    target_->prefilledTokens = nTokensAll_;
    target_->lastLogitsIndex = keptIndex;
  } else {
    L.llama_memory_clear(mem, true);
  }
  L.llama_batch_free(batch);
}

void CaptureWorker::OnProgress(const CaptureProgress* data, size_t count) {
  if (onProgress_.IsEmpty() || count == 0) return;
  Napi::Env env = Env();
  const CaptureProgress& p = data[count - 1];
  try {
    onProgress_.Call({Napi::Number::New(env, p.textsDone), Napi::Number::New(env, p.tokensDone)});
  } catch (const Napi::Error&) {
    // an exception thrown by the user's progress callback must not escape here
  }
}

void CaptureWorker::OnOK() {
  Napi::Env env = Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("decodeMs", Napi::Number::New(env, decodeUs_ / 1000.0));
  deferred_.Resolve(result);
}

void CaptureWorker::OnError(const Napi::Error& e) {
  Napi::Error err = Napi::Error::New(Env(), e.Message());
  err.Set("code", Napi::String::New(Env(), code_.empty() ? "DECODE_FAILED" : code_));
  deferred_.Reject(err.Value());
}

// ---------------------------------------------------------------------------
// The eval callback. Called by ggml's scheduler on the worker thread, inside
// llama_decode: once with ask=true for every node (do we want its data?), and
// with ask=false after a wanted node was computed.

namespace {

// Which slot a tensor name refers to, -1 when none: "l_out-<n>" or "result_norm".
inline int32_t SlotOf(const CapturePlan& plan, const char* name) {
  if (name[0] == 'l' && std::strncmp(name, "l_out-", 6) == 0) {
    const char* p = name + 6;
    int32_t v = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    if (*p != '\0' || v >= static_cast<int32_t>(plan.slotOfLayer.size())) return -1;
    return plan.slotOfLayer[v];
  }
  if (name[0] == 'r' && plan.finalSlot >= 0 && std::strcmp(name, "result_norm") == 0) return plan.finalSlot;
  return -1;
}

void CopyRows(CapturePlan& plan, struct ggml_tensor* t, int32_t slot) {
  const int32_t nEmbd = plan.nEmbd;
  if (t->type != GGML_TYPE_F32 || t->ne[0] != nEmbd) {
    plan.error = std::string("tensor ") + t->name + " is not float32 with n_embd columns";
    return;
  }
  bool tokenRows;
  if (t->ne[1] == plan.nTokens) {
    tokenRows = true;
  } else if (t->ne[1] == plan.nOutputs) {
    tokenRows = false;
  } else {
    plan.error = std::string("tensor ") + t->name + " has an unexpected number of rows";
    return;
  }
  const bool host = t->buffer && L.ggml_backend_buffer_is_host(t->buffer);
  const size_t rowBytes = sizeof(float) * nEmbd;
  if (t->nb[1] != rowBytes) {
    plan.error = std::string("tensor ") + t->name + " is not contiguous";
    return;
  }
  for (const CaptureRun& run : plan.runs) {
    const int32_t row = tokenRows ? run.tokenRow : run.outputRow;
    const size_t bytes = rowBytes * run.count;
    const float* src;
    if (host) {
      src = reinterpret_cast<const float*>(static_cast<const char*>(t->data) + rowBytes * row);
    } else {
      if (plan.scratch.size() < static_cast<size_t>(run.count) * nEmbd) plan.scratch.resize(static_cast<size_t>(run.count) * nEmbd);
      L.ggml_backend_tensor_get(t, plan.scratch.data(), rowBytes * row, bytes);
      src = plan.scratch.data();
    }
    if (plan.pool == POOL_LAST) {
      std::memcpy(plan.out[slot] + static_cast<size_t>(run.text) * nEmbd, src, bytes);
    } else if (plan.pool == POOL_TOKENS) {
      std::memcpy(plan.out[slot] + (static_cast<size_t>(plan.offsets[run.text]) + run.pos) * nEmbd, src, bytes);
    } else {
      double* a = plan.acc[slot] + static_cast<size_t>(run.text) * nEmbd;
      for (int32_t r = 0; r < run.count; r++) {
        const float* s = src + static_cast<size_t>(r) * nEmbd;
        for (int32_t e = 0; e < nEmbd; e++) a[e] += s[e];
      }
    }
  }
}

}  // namespace

bool AddonContext::EvalCallback(struct ggml_tensor* t, bool ask, void* userData) {
  auto* self = static_cast<AddonContext*>(userData);
  CapturePlan* plan = self->plan;
  if (!plan) return ask ? false : true;
  if (plan->stopped) {
    // Early exit: every node is "wanted", and after it is computed we say stop,
    // so the scheduler leaves each remaining split after one node.
    return ask ? true : false;
  }
  const int32_t slot = SlotOf(*plan, t->name);
  if (ask) return slot >= 0;
  if (slot < 0) return true;
  CopyRows(*plan, t, slot);
  if (!plan->seen[slot]) {
    plan->seen[slot] = 1;
    plan->nSeen++;
  }
  if (!plan->error.empty()) {
    plan->stopped = true;
    return false;
  }
  if (plan->earlyExit && plan->nSeen == plan->nSlots) {
    plan->stopped = true;
    return false;
  }
  return true;
}

bool AddonContext::AbortCallback(void* userData) {
  return static_cast<AddonContext*>(userData)->cancelled.load();
}
