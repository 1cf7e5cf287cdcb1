// StreamingMonitor: the streaming rule of a response monitor, per candidate. Each
// decoded token's score s_t = sigmoid(w . h_t + b) comes from the hidden state the eval
// callback sees (CapturePlan scores the monitor's layer rows); the aggregate a_t is an
// exponential moving average (a_1 = s_1, a_t = alpha s_t + (1 - alpha) a_{t-1}) or the
// mean of the last `window` scores; the candidate is flagged the first time
// a_t >= threshold at a token t >= minTokens. A NaN score flags at once (fail closed).
// Mirrored exactly by src/monitor/rule.ts (the replay used to evaluate and calibrate).
#pragma once
#include <napi.h>

#include <string>
#include <vector>

class StreamingMonitor {
 public:
  // Reads request.monitor = { slot, w: Float32Array(nEmbd), b, kind: 0 ema | 1 mean, alpha,
  // window, threshold, minTokens } for `items` candidates; throws a JS error on bad input.
  void Parse(Napi::Env env, Napi::Object monitor, int32_t nEmbd, int32_t nSlots, size_t items);
  bool Active() const { return slot_ >= 0; }
  int32_t Slot() const { return slot_; }
  const float* Weights() const { return w_.data(); }
  double Bias() const { return b_; }

  // Adds candidate `item`'s next token score; true the first time it flags.
  bool Push(size_t item, double score);
  const std::vector<float>& Scores(size_t item) const { return state_[item].scores; }
  int32_t FlaggedAt(size_t item) const { return state_[item].flaggedAt; }
  double Aggregate(size_t item) const { return state_[item].aggregate; }

 private:
  struct State {
    std::vector<float> scores;  // reported
    std::vector<double> exact;  // what the window sums
    double aggregate = 0;
    double windowSum = 0;
    int32_t flaggedAt = -1;
  };
  int32_t slot_ = -1;
  std::vector<float> w_;
  double b_ = 0;
  int32_t kind_ = 0;
  double alpha_ = 0.2;
  int32_t window_ = 8;
  double threshold_ = 0.5;
  int32_t minTokens_ = 1;
  std::vector<State> state_;
};
