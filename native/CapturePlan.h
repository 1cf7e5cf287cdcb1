// CapturePlan: what the graph eval callback copies out during llama_decode. One
// parser of a capture request (layers, pool, output buffers; every check done once,
// here), the per-ubatch bookkeeping, and the callback's tensor handling. Used by
// BatchDecodeWorker (capture) and GenerateWorker (response hidden states).
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "LlamaApi.h"

enum CapturePool { POOL_LAST = 0, POOL_MEAN = 1, POOL_TOKENS = 2 };

// One contiguous run of tokens of one text inside a ubatch whose rows are needed.
struct CaptureRun {
  int32_t tokenRow;   // row in tensors that hold every token of the ubatch
  int32_t outputRow;  // row in tensors that hold only the ubatch's outputs
  int32_t count;
  int32_t text;       // index of the text (or candidate) in the request
  int32_t pos;        // position of the run's first token in its text
};

class CapturePlan {
 public:
  // Reads request.layers (Int32Array: layer numbers, -1 = final), request.pool and
  // request.outputs (one Float32Array per layer of rows x nEmbd). `maxPool` bounds the
  // pools the caller supports. Throws a JS TypeError/RangeError on bad input. An empty
  // layer list is allowed when `allowEmpty` (generation without capture).
  void Parse(Napi::Env env, Napi::Object request, int32_t nLayer, int32_t nEmbd, size_t rows, int32_t maxPool, bool allowEmpty);

  bool Active() const { return nSlots_ > 0; }
  int32_t Pool() const { return pool_; }
  int32_t Slots() const { return nSlots_; }
  int32_t Embd() const { return nEmbd_; }
  bool EarlyExit() const { return earlyExit_; }
  void SetEarlyExit(bool v) { earlyExit_ = v; }
  // Whether the deepest layer or "final" is read: those tensors hold only output rows.
  bool ReadsOutputOnlyTensor() const;
  // Token offsets of the texts, for pool "tokens".
  void SetOffsets(const uint32_t* offsets) { offsets_ = offsets; }

  // Rows the callback copies during the next llama_decode.
  std::vector<CaptureRun> runs;

  // Before each llama_decode: the ubatch's token and output counts.
  void BeginDecode(int32_t nTokens, int32_t nOutputs);
  // After it: an error the callback hit, or the requested tensors it never saw.
  std::string DecodeError() const;

  // Pool "mean": writes sum / count into the outputs for item `text`.
  void FinishMean(int32_t text, double count);

  // The eval callback's work (ask: do we want this tensor? else: it was computed).
  bool OnTensor(struct ggml_tensor* t, bool ask);

  // A linear scorer on one slot's rows: for each run, sigmoid(w . row + b) of its last row
  // is kept as the item's score (a response monitor; w stays owned by the caller).
  void SetScorer(int32_t slot, const float* w, double b);
  double ItemScore(int32_t item) const { return itemScore_[item]; }

 private:
  int32_t SlotOf(const char* name) const;
  void CopyRows(struct ggml_tensor* t, int32_t slot);

  int32_t nEmbd_ = 0;
  int32_t nLayer_ = 0;
  int32_t pool_ = POOL_LAST;
  int32_t nSlots_ = 0;
  bool earlyExit_ = true;
  std::vector<int32_t> slotOfLayer_;  // layer -> slot, -1 when not captured
  int32_t finalSlot_ = -1;            // slot of "result_norm", -1 when not captured
  std::vector<float*> out_;           // [slot] -> Float32Array data
  std::vector<double> acc_;           // pool mean: slots x rows x nEmbd accumulators
  size_t rows_ = 0;
  const uint32_t* offsets_ = nullptr;
  // state during one decode
  int32_t nTokens_ = 0;
  int32_t nOutputs_ = 0;
  std::vector<uint8_t> seen_;
  int32_t nSeen_ = 0;
  bool stopped_ = false;
  std::string error_;
  std::vector<float> scratch_;  // for tensors in device memory
  int32_t scoreSlot_ = -1;
  const float* scoreW_ = nullptr;
  double scoreB_ = 0;
  std::vector<double> itemScore_;
};
