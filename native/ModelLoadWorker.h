// ModelLoadWorker: loads an AddonModel's GGUF file with llama.cpp on a worker thread.
#pragma once
#include <napi.h>

#include <vector>

#include "LlamaApi.h"

class AddonModel;

class ModelLoadWorker : public Napi::AsyncWorker {
 public:
  ModelLoadWorker(Napi::Env env, AddonModel* target);
  ~ModelLoadWorker() override;
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  AddonModel* target_;
  Napi::Promise::Deferred deferred_;
  llama_model* model_ = nullptr;
  std::vector<ggml_backend_dev_t> devices_;
};
