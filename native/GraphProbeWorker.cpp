#include "GraphProbeWorker.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "AddonContext.h"
#include "AddonModel.h"

GraphProbeWorker::GraphProbeWorker(Napi::Env env, AddonContext* target)
    : Napi::AsyncWorker(env, "SafetyLensGraphProbe"), job_(env, target, Napi::Object::New(env), env.Undefined()), target_(target) {
  nLayer_ = L.llama_model_n_layer(target->model->model);
  layerNamed_.assign(nLayer_ > 0 ? nLayer_ : 0, 0);
}

bool GraphProbeWorker::OnTensor(struct ggml_tensor* t, bool ask) {
  if (!ask) return true;  // never asked for: nothing is wanted
  nodes_++;
  const char* name = t->name;
  if (std::strncmp(name, "l_out-", 6) == 0) {
    char* end = nullptr;
    const long l = std::strtol(name + 6, &end, 10);
    if (end != name + 6 && *end == '\0' && l >= 0 && l < nLayer_) layerNamed_[l] = 1;
  } else if (std::strcmp(name, "result_norm") == 0) {
    resultNorm_ = true;
  } else if (std::strcmp(name, "result_output") == 0) {
    stop_ = true;  // the last node: everything before it was asked about already
  }
  return false;
}

void GraphProbeWorker::Execute() {
  llama_context* ctx = target_->ctx;
  const llama_vocab* vocab = target_->model->vocab;
  llama_token tok = L.llama_vocab_bos(vocab);
  if (tok < 0 || tok >= L.llama_vocab_n_tokens(vocab)) tok = 0;
  llama_batch batch = L.llama_batch_init(1, 0, 1);
  batch.n_tokens = 1;
  batch.token[0] = tok;
  batch.pos[0] = 0;
  batch.n_seq_id[0] = 1;
  batch.seq_id[0][0] = 0;
  batch.logits[0] = 1;
  llama_memory_t mem = L.llama_get_memory(ctx);
  L.llama_memory_clear(mem, true);
  LlamaLogClear();
  auto t0 = std::chrono::steady_clock::now();
  target_->probe = this;
  const int32_t rc = L.llama_decode(ctx, batch);
  target_->probe = nullptr;
  ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  L.llama_memory_clear(mem, true);
  L.llama_batch_free(batch);
  aborted_ = rc == 2 && stop_.load();
  if (rc != 0 && !aborted_) {
    std::string log = LlamaLogLastErrors();
    code_ = target_->cancelled ? "ABORTED" : "DECODE_FAILED";
    SetError("llama.cpp could not decode a test token: llama_decode returned " + std::to_string(rc) + (log.empty() ? "" : ": " + log));
  }
}

void GraphProbeWorker::OnOK() {
  Napi::Env env = Env();
  job_.Resolve(env, [&] {
    Napi::Object result = Napi::Object::New(env);
    std::vector<int32_t> named;
    for (int32_t l = 0; l < nLayer_; l++) {
      if (layerNamed_[l]) named.push_back(l);
    }
    Napi::Int32Array layers = Napi::Int32Array::New(env, named.size());
    for (size_t i = 0; i < named.size(); i++) layers[i] = named[i];
    result.Set("layers", layers);
    result.Set("resultNorm", Napi::Boolean::New(env, resultNorm_));
    result.Set("nodes", Napi::Number::New(env, nodes_));
    result.Set("aborted", Napi::Boolean::New(env, aborted_));
    result.Set("ms", Napi::Number::New(env, ms_));
    return result;
  });
}

void GraphProbeWorker::OnError(const Napi::Error& e) { job_.Reject(Env(), e.Message(), code_); }
