#include "BatchDecodeWorker.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "AddonModel.h"

BatchDecodeWorker::BatchDecodeWorker(Napi::Env env, AddonContext* target, Mode mode, Napi::Object request, Napi::Value onProgress)
    : Napi::AsyncProgressQueueWorker<DecodeProgress>(env, "SafetyLensBatchDecode"),
      job_(env, target, request, onProgress),
      target_(target),
      mode_(mode) {
  // Everything is checked before the job counts as started: a throw below leaves the
  // context idle again (job_'s destructor runs as the half-built worker unwinds).
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
  // copies: the caller's buffers may be reused or detached while the job runs
  tokens_.assign(tokens.Data(), tokens.Data() + tokens.ElementLength());
  offsets_.assign(offsets.Data(), offsets.Data() + offsets.ElementLength());
  nTexts_ = static_cast<uint32_t>(offsets_.size() - 1);
  nTokensAll_ = static_cast<uint32_t>(tokens_.size());
  if (offsets_[0] != 0 || offsets_[nTexts_] != nTokensAll_) throw Napi::RangeError::New(env, "request.offsets do not span request.tokens");
  for (uint32_t i = 0; i < nTexts_; i++) {
    if (offsets_[i + 1] <= offsets_[i]) throw Napi::RangeError::New(env, "every text needs at least one token");
    if (Len(i) > target->contextSize) throw Napi::RangeError::New(env, "a text is longer than the context");
  }
  for (int32_t t : tokens_) {
    if (t < 0 || t >= nVocab) throw Napi::RangeError::New(env, "token id out of range");
  }

  if (mode == Mode::Capture) {
    if (!target->withCallback) throw Napi::Error::New(env, "this context was created without the capture callback");
    const int32_t pool = request.Get("pool").IsNumber() ? request.Get("pool").As<Napi::Number>().Int32Value() : -1;
    plan_.Parse(env, request, nLayer, nEmbd, pool == POOL_TOKENS ? nTokensAll_ : nTexts_, POOL_TOKENS, false);
    plan_.SetEarlyExit(request.Get("earlyExit").ToBoolean().Value());
    plan_.SetOffsets(offsets_.data());
    // The last layer and the final norm hold only the rows of tokens flagged as outputs.
    needOutputsForAll_ = plan_.Pool() != POOL_LAST && plan_.ReadsOutputOnlyTensor();
  } else {
    Napi::Value e = request.Get("embeddings");
    if (e.IsTypedArray()) {
      if (!target->embeddings) throw Napi::Error::New(env, "this context was created without embeddings");
      if (e.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array || e.As<Napi::Float32Array>().ElementLength() != static_cast<size_t>(nTexts_) * nEmbd) {
        throw Napi::RangeError::New(env, "embeddings buffer has the wrong size");
      }
      embeddingsOut_ = e.As<Napi::Float32Array>().Data();
    }
    Napi::Value lt = request.Get("logitTokens");
    if (lt.IsTypedArray()) {
      if (target->embeddings) throw Napi::Error::New(env, "this context returns embeddings, not logits");
      if (lt.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw Napi::TypeError::New(env, "logitTokens must be an Int32Array");
      Napi::Int32Array ids = lt.As<Napi::Int32Array>();
      for (size_t k = 0; k < ids.ElementLength(); k++) {
        if (ids[k] < 0 || ids[k] >= nVocab) throw Napi::RangeError::New(env, "logit token id out of range");
        logitTokens_.push_back(ids[k]);
      }
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
      Napi::Uint32Array from = sf.As<Napi::Uint32Array>();
      scoreFrom_.assign(from.Data(), from.Data() + nTexts_);
      for (uint32_t i = 0; i < nTexts_; i++) {
        if (scoreFrom_[i] < 1 || scoreFrom_[i] >= Len(i)) throw Napi::RangeError::New(env, "scoreFrom must be within each text, after its first token");
      }
      logprobsOut_ = lp.As<Napi::Float64Array>().Data();
      std::fill(logprobsOut_, logprobsOut_ + nTexts_, 0.0);
    }
  }
  keep_ = request.Has("keep") && request.Get("keep").ToBoolean().Value();
  // append: the text continues sequence `seq` at position `pos0`; what other sequences hold
  // (other chats) stays, and this sequence's cells from pos0 on are replaced
  append_ = request.Has("seq");
  if (append_) {
    if (!keep_) throw Napi::RangeError::New(env, "seq needs keep");
    const double seq = request.Get("seq").ToNumber().DoubleValue(), pos0 = request.Has("pos0") ? request.Get("pos0").ToNumber().DoubleValue() : 0;
    if (!(seq >= 0 && seq < target->sequences) || seq != static_cast<double>(static_cast<int32_t>(seq))) throw Napi::RangeError::New(env, "seq is out of range");
    if (!(pos0 >= 0 && pos0 + nTokensAll_ <= target->contextSize) || pos0 != static_cast<double>(static_cast<int32_t>(pos0))) throw Napi::RangeError::New(env, "pos0 is out of range");
    seq_ = static_cast<int32_t>(seq);
    pos0_ = static_cast<uint32_t>(pos0);
  }
  if (keep_) {
    if (nTexts_ != 1) throw Napi::RangeError::New(env, "a prefill takes exactly one text");
    plan_.SetEarlyExit(false);  // generation needs the logits
  }
}

void BatchDecodeWorker::Fail(const std::string& code, const std::string& message) {
  code_ = code;
  SetError(message);
}

bool BatchDecodeWorker::DecodeOnce(llama_batch& batch, uint32_t nTokens) {
  batch.n_tokens = static_cast<int32_t>(nTokens);
  int32_t nOutputs = 0;
  for (uint32_t k = 0; k < nTokens; k++) nOutputs += batch.logits[k] ? 1 : 0;
  plan_.BeginDecode(static_cast<int32_t>(nTokens), nOutputs);
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
  if (rc == 1) {
    Fail("CONTEXT_FULL", "the context has no room for this batch (no KV cache slot); dispose other chats or load the model with a larger contextSize");
    return false;
  }
  if (rc != 0) {
    std::string log = LlamaLogLastErrors();
    Fail("DECODE_FAILED", "llama_decode failed with code " + std::to_string(rc) + (log.empty() ? "" : ": " + log));
    return false;
  }
  if (mode_ == Mode::Capture) {
    std::string err = plan_.DecodeError();
    if (!err.empty()) {
      Fail("DECODE_FAILED", err);
      return false;
    }
  }
  return true;
}

void BatchDecodeWorker::Execute(const ExecutionProgress& progress) {
  llama_context* ctx = target_->ctx;
  llama_memory_t mem = L.llama_get_memory(ctx);
  const uint32_t batchSize = target_->batchSize;
  const uint32_t maxSeqs = target_->sequences;
  const int32_t nEmbd = L.llama_model_n_embd(target_->model->model);
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
    auto len = [&](uint32_t t) { return Len(t); };
    uint32_t j = i + 1, total = len(i);
    if (total <= batchSize) {
      while (j < nTexts_ && j - i < maxSeqs && total + len(j) <= batchSize) total += len(j++);
    }
    if (append_) L.llama_memory_seq_rm(mem, seq_, static_cast<llama_pos>(pos0_), -1);
    else L.llama_memory_clear(mem, true);

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
          batch.pos[idx] = static_cast<llama_pos>(pos0_ + p + k);
          batch.n_seq_id[idx] = 1;
          batch.seq_id[idx][0] = static_cast<llama_seq_id>(append_ ? seq_ : static_cast<int32_t>(t - i));
          const bool isLast = endsText && k == take - 1;
          batch.logits[idx] = (isLast || needOutputsForAll_) ? 1 : 0;
          if (logprobsOut_) {
            const uint32_t pos = p + k;
            if (pos + 1 >= scoreFrom_[t] && pos + 1 < tl) {
              batch.logits[idx] = 1;
              scoreRows.push_back({static_cast<int32_t>(idx), static_cast<int32_t>(t), tokens_[offsets_[t] + pos + 1]});
            }
          }
        }
        // rows the callback copies for this piece of text
        if (mode_ == Mode::Capture) {
          if (plan_.Pool() == POOL_LAST) {
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
        DecodeProgress pr{i, tokensDone};
        progress.Send(&pr, 1);
      }
      if (ok && target_->cancelled) {
        Fail("ABORTED", "The operation was aborted");
        ok = false;
      }
    }
    if (!ok) break;
    if (mode_ == Mode::Capture && plan_.Pool() == POOL_MEAN) {
      for (uint32_t tt = i; tt < j; tt++) plan_.FinishMean(static_cast<int32_t>(tt), static_cast<double>(len(tt)));
    }
    i = j;
    DecodeProgress pr{i, tokensDone};
    progress.Send(&pr, 1);
  }
  if (keep_ && code_.empty() && i == nTexts_) {
    target_->prefilledTokens = pos0_ + nTokensAll_;
    target_->prefilledSeq = seq_;
    target_->lastLogitsIndex = keptIndex;
  } else if (append_) {
    L.llama_memory_seq_rm(mem, seq_, static_cast<llama_pos>(pos0_), -1);  // the cached prefix stays valid
  } else {
    L.llama_memory_clear(mem, true);
  }
  L.llama_batch_free(batch);
}

void BatchDecodeWorker::OnProgress(const DecodeProgress* data, size_t count) {
  Napi::Env env = Env();
  if (count == 0 || !job_.JsAlive(env)) return;
  const DecodeProgress& p = data[count - 1];
  job_.CallBack(env, {Napi::Number::New(env, p.textsDone), Napi::Number::New(env, p.tokensDone)});
}

void BatchDecodeWorker::OnOK() {
  Napi::Env env = Env();
  job_.Resolve(env, [&] {
    Napi::Object result = Napi::Object::New(env);
    result.Set("decodeMs", Napi::Number::New(env, decodeUs_ / 1000.0));
    return result;
  });
}

void BatchDecodeWorker::OnError(const Napi::Error& e) { job_.Reject(Env(), e.Message(), code_); }
