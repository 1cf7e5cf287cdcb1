// ContextInitWorker: creates an AddonContext's llama_context (and its persistent CPU
// threadpool) on a worker thread.
#pragma once
#include <napi.h>

#include "LlamaApi.h"

class AddonContext;

class ContextInitWorker : public Napi::AsyncWorker {
 public:
  ContextInitWorker(Napi::Env env, AddonContext* target);
  ~ContextInitWorker() override;
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  AddonContext* target_;
  Napi::Promise::Deferred deferred_;
  llama_context* ctx_ = nullptr;
  ggml_threadpool* threadpool_ = nullptr;
  void (*tpFree_)(ggml_threadpool*) = nullptr;
};
