// AddonContext: a llama_context on an AddonModel, with the graph eval callback
// that copies hidden-state rows out (CapturePlan) while llama_decode runs. Its jobs
// run on worker threads: ContextInitWorker, BatchDecodeWorker, GenerateWorker,
// GraphProbeWorker.
// Mirrored by src/core/model.ts and src/core/generate.ts.
#pragma once
#include <napi.h>

#include <atomic>
#include <string>
#include <vector>

#include "CapturePlan.h"
#include "LlamaApi.h"

class AddonModel;
class GraphProbeWorker;

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
  GraphProbeWorker* probe = nullptr;  // set by GraphProbeWorker around its llama_decode
  // After a prefill (capture/decode with keep): the prompt stays in sequence
  // prefilledSeq of the KV cache (positions 0..prefilledTokens-1) and its last
  // token's logits are at batch index lastLogitsIndex.
  uint32_t prefilledTokens = 0;
  int32_t prefilledSeq = 0;
  int32_t lastLogitsIndex = -1;

  void Free();
  static bool EvalCallback(struct ggml_tensor* t, bool ask, void* userData);
  static bool AbortCallback(void* userData);

 private:
  Napi::Value Init(const Napi::CallbackInfo& info);
  Napi::Value Capture(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value ProbeGraph(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value SeqRemove(const Napi::CallbackInfo& info);
  Napi::Value SeqCopy(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
};
