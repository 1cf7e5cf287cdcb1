// AddonContext: a llama_context on an AddonModel, with the graph eval callback
// that copies hidden-state rows out while llama_decode runs. Mirrored by the
// capture code in src/model.ts.
#pragma once
#include <napi.h>

#include <atomic>
#include <string>
#include <vector>

#include "LlamaApi.h"

class AddonModel;

// One contiguous run of tokens of one text inside a ubatch whose rows are needed.
struct CaptureRun {
  int32_t tokenRow;   // row in tensors that hold every token of the ubatch
  int32_t outputRow;  // row in tensors that hold only the ubatch's outputs
  int32_t count;
  int32_t text;       // index of the text in the request
  int32_t pos;        // position of the run's first token in its text
};

// What the eval callback does during one llama_decode.
struct CapturePlan {
  int32_t nEmbd = 0;
  int32_t nTokens = 0;   // tokens in this ubatch
  int32_t nOutputs = 0;  // outputs in this ubatch
  std::vector<int32_t> slotOfLayer;  // layer -> slot, -1 when not captured
  int32_t finalSlot = -1;            // slot of "result_norm", -1 when not captured
  int32_t nSlots = 0;
  std::vector<CaptureRun> runs;
  // Per slot destinations. pool 0 (last) and 2 (tokens) write floats, pool 1 (mean) adds into doubles.
  int32_t pool = 0;
  std::vector<float*> out;       // [slot] -> Float32Array data
  std::vector<double*> acc;      // [slot] -> accumulators, nTexts * nEmbd (pool mean)
  const uint32_t* offsets = nullptr;  // token offsets of the texts (pool tokens)
  bool earlyExit = true;
  // state during one decode
  std::vector<uint8_t> seen;
  int32_t nSeen = 0;
  bool stopped = false;
  std::string error;
  std::vector<float> scratch;  // for tensors in device memory
};

class AddonContext : public Napi::ObjectWrap<AddonContext> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit AddonContext(const Napi::CallbackInfo& info);
  ~AddonContext() override;

  AddonModel* model = nullptr;
  Napi::ObjectReference modelRef;
  llama_context* ctx = nullptr;
  // A persistent CPU threadpool: without one, ggml starts and joins its worker
  // threads on every graph compute, which on small VMs costs milliseconds per
  // llama_decode (and per capture chunk).
  ggml_threadpool* threadpool = nullptr;
  void (*threadpoolFree)(ggml_threadpool*) = nullptr;
  uint32_t contextSize = 0, batchSize = 512, sequences = 64;
  int32_t threads = 1;
  bool withCallback = true;
  bool embeddings = false;
  bool flashAttention = false;
  bool kvF16 = false;
  bool disposed = false;
  bool busy = false;
  std::atomic<bool> cancelled{false};
  CapturePlan* plan = nullptr;  // set by the worker around llama_decode
  // After a prefill (capture/decode with keep): the prompt stays in sequence 0
  // of the KV cache and its last token's logits at batch index lastLogitsIndex.
  uint32_t prefilledTokens = 0;
  int32_t lastLogitsIndex = -1;

  void Free();
  static bool EvalCallback(struct ggml_tensor* t, bool ask, void* userData);
  static bool AbortCallback(void* userData);

 private:
  Napi::Value Init(const Napi::CallbackInfo& info);
  Napi::Value Capture(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
};
