// AddonModel: one loaded GGUF model (llama_model). Mirrored by src/core/model.ts.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "LlamaApi.h"

class AddonModel : public Napi::ObjectWrap<AddonModel> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit AddonModel(const Napi::CallbackInfo& info);
  ~AddonModel() override;

  llama_model* model = nullptr;
  const llama_vocab* vocab = nullptr;
  std::string path;
  int32_t gpuLayers = 0;
  bool useMmap = true;
  std::vector<std::string> deviceNames;  // devices to offload to; empty = none
  bool disposed = false;
  int contexts = 0;  // live AddonContext objects using this model

  void Free();

 private:
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Tokenize(const Napi::CallbackInfo& info);
  Napi::Value Detokenize(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
};
