// CaptureWorker: runs a batch of texts through llama_decode on a worker thread.
// Mode "capture" copies the requested layers' rows through the eval callback;
// mode "decode" only evaluates (the benchmark's floor) and, on a context made
// with embeddings on, reads llama.cpp's own last-token embeddings (reference).
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "AddonContext.h"

struct CaptureProgress {
  uint32_t textsDone;
  uint32_t tokensDone;
};

class CaptureWorker : public Napi::AsyncProgressWorker<CaptureProgress> {
 public:
  enum class Mode { Capture, Decode };
  // Reads and checks the request; throws a JS TypeError/RangeError on bad input.
  CaptureWorker(Napi::Env env, AddonContext* target, Mode mode, Napi::Object request, Napi::Value onProgress);
  ~CaptureWorker() override;
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override;
  void OnProgress(const CaptureProgress* data, size_t count) override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  bool DecodeOnce(llama_batch& batch, uint32_t nTokens);
  void Fail(const std::string& code, const std::string& message);

  AddonContext* target_;
  Mode mode_;
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference requestRef_;  // keeps the typed arrays alive
  Napi::FunctionReference onProgress_;

  const int32_t* tokens_ = nullptr;
  const uint32_t* offsets_ = nullptr;
  uint32_t nTexts_ = 0;
  uint32_t nTokensAll_ = 0;
  CapturePlan plan_;
  std::vector<double> accStorage_;
  float* embeddingsOut_ = nullptr;  // decode mode with embeddings: nTexts x nEmbd
  std::vector<int32_t> logitTokens_;  // decode mode: last-token logits of these token ids
  float* logitsOut_ = nullptr;        // nTexts x logitTokens_.size()
  const uint32_t* scoreFrom_ = nullptr;  // decode mode: per text, the first token whose log-probability is summed
  double* logprobsOut_ = nullptr;        // per text: sum of log p(token | prefix) from scoreFrom to the end
  bool needOutputsForAll_ = false;  // pool mean/tokens with a tensor that holds only output rows
  bool keep_ = false;               // prefill: keep the single text in the KV cache for generation
  std::string code_;
  uint64_t decodeUs_ = 0;
};
