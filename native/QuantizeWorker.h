// QuantizeWorker: writes a quantized copy of a GGUF model with libllama's own quantizer
// (llama_model_quantize) on a worker thread. For tools (synthetic models of each
// quantization for the architecture tests); no JS callbacks run while it works.
#pragma once
#include <napi.h>

#include <string>

#include "LlamaApi.h"

class QuantizeWorker : public Napi::AsyncWorker {
 public:
  // quantize(input: string, output: string, type: "f16" | "q8_0" | "q4_k_m", threads?: number): Promise<void>
  static Napi::Value Start(const Napi::CallbackInfo& info);

  QuantizeWorker(Napi::Env env, std::string input, std::string output, llama_ftype ftype, int32_t threads);
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  Napi::Promise::Deferred deferred_;
  std::string input_;
  std::string output_;
  llama_ftype ftype_;
  int32_t threads_;
};
