// GraphProbeWorker: which hidden states a model's compute graph names, found once at load
// (src/core/model.ts) so that capture can refuse layers the architecture never names,
// before any decode. It decodes one token with an eval callback that records, in the
// scheduler's "ask" pass, the nodes named l_out-<n> and result_norm. The scheduler asks
// about every node of a graph split before computing it, so once the logits node
// (result_output) has been asked about the whole graph is known: the abort callback then
// stops the computation after one node (on the CPU backend; other backends finish their
// split, one token's work).
#pragma once
#include <napi.h>

#include <atomic>
#include <vector>

#include "ContextJob.h"
#include "LlamaApi.h"

class AddonContext;

class GraphProbeWorker : public Napi::AsyncWorker {
 public:
  GraphProbeWorker(Napi::Env env, AddonContext* target);
  Napi::Promise Promise() { return job_.Promise(); }

  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

  // Through AddonContext's eval and abort callbacks, on the decoding thread.
  bool OnTensor(struct ggml_tensor* t, bool ask);
  bool StopNow() const { return stop_.load(); }

 private:
  ContextJob job_;
  AddonContext* target_;
  int32_t nLayer_ = 0;
  std::vector<uint8_t> layerNamed_;  // l_out-<n> seen, per layer
  bool resultNorm_ = false;
  uint32_t nodes_ = 0;
  std::atomic<bool> stop_{false};
  bool aborted_ = false;
  double ms_ = 0;
  std::string code_;
};
