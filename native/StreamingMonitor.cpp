#include "StreamingMonitor.h"

#include <cmath>

namespace {
double Field(Napi::Env env, Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("monitor.") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}
}  // namespace

void StreamingMonitor::Parse(Napi::Env env, Napi::Object m, int32_t nEmbd, int32_t nSlots, size_t items) {
  const double slot = Field(env, m, "slot");
  if (!(slot >= 0 && slot < nSlots) || slot != std::floor(slot)) throw Napi::RangeError::New(env, "monitor.slot must name a captured layer");
  Napi::Value wv = m.Get("w");
  if (!wv.IsTypedArray() || wv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array || wv.As<Napi::Float32Array>().ElementLength() != static_cast<size_t>(nEmbd)) {
    throw Napi::TypeError::New(env, "monitor.w must be a Float32Array of nEmbd weights");
  }
  Napi::Float32Array w = wv.As<Napi::Float32Array>();
  w_.assign(w.Data(), w.Data() + nEmbd);
  b_ = Field(env, m, "b");
  kind_ = static_cast<int32_t>(Field(env, m, "kind"));
  alpha_ = Field(env, m, "alpha");
  window_ = static_cast<int32_t>(Field(env, m, "window"));
  threshold_ = Field(env, m, "threshold");
  minTokens_ = static_cast<int32_t>(Field(env, m, "minTokens"));
  bool finite = std::isfinite(b_) && std::isfinite(threshold_);
  for (float x : w_) finite = finite && std::isfinite(x);
  if (!finite) throw Napi::RangeError::New(env, "monitor weights must be finite");
  if ((kind_ != 0 && kind_ != 1) || !(alpha_ > 0 && alpha_ <= 1) || window_ < 1 || minTokens_ < 1) throw Napi::RangeError::New(env, "bad monitor rule");
  slot_ = static_cast<int32_t>(slot);
  state_.assign(items, State());
}

bool StreamingMonitor::Push(size_t item, double s) {
  State& st = state_[item];
  if (st.flaggedAt >= 0) return false;
  st.scores.push_back(static_cast<float>(s));
  st.exact.push_back(s);
  const size_t t = st.scores.size();  // 1-based index of this token
  if (std::isnan(s)) {
    st.aggregate = s;
    st.flaggedAt = static_cast<int32_t>(t - 1);
    return true;
  }
  if (kind_ == 0) {
    st.aggregate = t == 1 ? s : alpha_ * s + (1 - alpha_) * st.aggregate;
  } else {
    st.windowSum += s;
    if (t > static_cast<size_t>(window_)) st.windowSum -= st.exact[t - 1 - window_];
    st.aggregate = st.windowSum / static_cast<double>(t < static_cast<size_t>(window_) ? t : window_);
  }
  if (static_cast<int32_t>(t) >= minTokens_ && st.aggregate >= threshold_) {
    st.flaggedAt = static_cast<int32_t>(t - 1);
    return true;
  }
  return false;
}
