// GenerateWorker: samples n candidate continuations of a prefilled prompt in
// parallel sequences that share the prompt's KV cells, streaming each token to
// JS and, through the same eval callback as capture, reading each candidate's
// response hidden states (last token or mean) while it decodes.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "AddonContext.h"
#include "CapturePlan.h"
#include "ContextJob.h"
#include "StreamingMonitor.h"

struct GenerateEvent {
  int32_t candidate;
  int32_t token;
  std::string piece;  // raw bytes; UTF-8 may be split across tokens
};

class GenerateWorker : public Napi::AsyncProgressQueueWorker<GenerateEvent> {
 public:
  GenerateWorker(Napi::Env env, AddonContext* target, Napi::Object request, Napi::Value onToken);
  ~GenerateWorker() override;
  Napi::Promise Promise() { return job_.Promise(); }

  void Execute(const ExecutionProgress& progress) override;
  void OnProgress(const GenerateEvent* data, size_t count) override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  struct Candidate {
    llama_sampler* sampler = nullptr;
    std::vector<llama_token> tokens;
    std::string text;
    std::string finish;  // "", "eos", "length", "stop", "flagged", "aborted"
    int32_t logitsIndex = -1;
    uint32_t decoded = 0;  // response tokens whose hidden state was read
    uint32_t inCache = 0;  // response tokens decoded into the KV cache
    std::vector<llama_token> cached;  // those tokens (a flagged one included)
  };

  ContextJob job_;
  AddonContext* target_;
  std::vector<Candidate> cands_;
  std::vector<std::string> stops_;
  uint32_t maxTokens_ = 16;
  bool ignoreEos_ = false;
  CapturePlan plan_;
  StreamingMonitor monitor_;
  std::vector<int32_t> seqs_;  // candidate -> sequence id
  bool keep_ = false;          // leave the candidates' cells in the cache (a chat commits one)
  std::string code_;
  uint64_t decodeUs_ = 0;
  uint32_t steps_ = 0;
};
