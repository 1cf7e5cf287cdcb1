// BatchDecodeWorker: runs a batch of texts through llama_decode on a worker thread,
// many texts per call, each its own sequence. What it reads out:
//   capture: the requested layers' rows, through the eval callback (CapturePlan);
//   decode:  nothing (the benchmark's floor), or llama.cpp's own last-token
//            embeddings (a context made with embeddings on), chosen last-token
//            logits, or the log-probabilities of each text's continuation;
//   with keep: the single text stays in the KV cache as a prompt for GenerateWorker;
//   with keep and seq: it continues that sequence from pos0 (a chat turn), and every
//   other sequence's cells stay.
// The job copies the tokens it reads: the caller may reuse its buffers at once.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "AddonContext.h"
#include "CapturePlan.h"
#include "ContextJob.h"

struct DecodeProgress {
  uint32_t textsDone;
  uint32_t tokensDone;
};

class BatchDecodeWorker : public Napi::AsyncProgressQueueWorker<DecodeProgress> {
 public:
  enum class Mode { Capture, Decode };
  // Reads and checks the request; throws a JS TypeError/RangeError on bad input.
  BatchDecodeWorker(Napi::Env env, AddonContext* target, Mode mode, Napi::Object request, Napi::Value onProgress);
  Napi::Promise Promise() { return job_.Promise(); }

  void Execute(const ExecutionProgress& progress) override;
  void OnProgress(const DecodeProgress* data, size_t count) override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  bool DecodeOnce(llama_batch& batch, uint32_t nTokens);
  void Fail(const std::string& code, const std::string& message);
  uint32_t Len(uint32_t t) const { return offsets_[t + 1] - offsets_[t]; }

  ContextJob job_;
  AddonContext* target_;
  Mode mode_;
  std::vector<int32_t> tokens_;    // copied from the request
  std::vector<uint32_t> offsets_;  // copied from the request
  uint32_t nTexts_ = 0;
  uint32_t nTokensAll_ = 0;
  CapturePlan plan_;
  float* embeddingsOut_ = nullptr;       // decode with embeddings: nTexts x nEmbd
  std::vector<int32_t> logitTokens_;     // decode: last-token logits of these token ids
  float* logitsOut_ = nullptr;           // nTexts x logitTokens_.size()
  std::vector<uint32_t> scoreFrom_;      // decode: per text, the first token whose log-probability is summed
  double* logprobsOut_ = nullptr;        // per text: sum of log p(token | prefix) from scoreFrom to the end
  bool needOutputsForAll_ = false;       // pool mean/tokens with a tensor that holds only output rows
  bool keep_ = false;                    // prefill: keep the single text in the KV cache for generation
  bool append_ = false;                  // prefill onto sequence seq_ from position pos0_, other sequences kept
  int32_t seq_ = 0;
  uint32_t pos0_ = 0;
  std::string code_;
  uint64_t decodeUs_ = 0;
};
