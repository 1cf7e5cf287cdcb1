#include "CapturePlan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

void CapturePlan::Parse(Napi::Env env, Napi::Object request, int32_t nLayer, int32_t nEmbd, size_t rows, int32_t maxPool, bool allowEmpty) {
  nEmbd_ = nEmbd;
  nLayer_ = nLayer;
  rows_ = rows;
  slotOfLayer_.assign(nLayer, -1);
  Napi::Value lv = request.Get("layers");
  Napi::Value ov = request.Get("outputs");
  Napi::Value pv = request.Get("pool");
  if (!lv.IsTypedArray() || lv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw Napi::TypeError::New(env, "request.layers must be an Int32Array");
  if (!ov.IsArray()) throw Napi::TypeError::New(env, "request.outputs must be an array of Float32Arrays");
  if (!pv.IsNumber()) throw Napi::TypeError::New(env, "request.pool must be a number");
  Napi::Int32Array layers = lv.As<Napi::Int32Array>();
  Napi::Array outs = ov.As<Napi::Array>();
  pool_ = pv.As<Napi::Number>().Int32Value();
  if (pool_ < POOL_LAST || pool_ > maxPool) throw Napi::RangeError::New(env, "unknown pool");
  nSlots_ = static_cast<int32_t>(layers.ElementLength());
  if ((nSlots_ == 0 && !allowEmpty) || outs.Length() != layers.ElementLength()) throw Napi::RangeError::New(env, "one output per layer is needed");
  for (int32_t s = 0; s < nSlots_; s++) {
    const int32_t layer = layers[s];
    if (layer == -1) {
      if (finalSlot_ != -1) throw Napi::RangeError::New(env, "duplicate layer");
      finalSlot_ = s;
    } else if (layer < 0 || layer >= nLayer) {
      throw Napi::RangeError::New(env, "layer out of range");
    } else {
      if (slotOfLayer_[layer] != -1) throw Napi::RangeError::New(env, "duplicate layer");
      slotOfLayer_[layer] = s;
    }
    Napi::Value o = outs.Get(s);
    if (!o.IsTypedArray() || o.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw Napi::TypeError::New(env, "outputs must be Float32Arrays");
    Napi::Float32Array f = o.As<Napi::Float32Array>();
    if (f.ElementLength() != rows * static_cast<size_t>(nEmbd)) throw Napi::RangeError::New(env, "an output buffer has the wrong size");
    out_.push_back(f.Data());
  }
  if (pool_ == POOL_MEAN) acc_.assign(static_cast<size_t>(nSlots_) * rows * nEmbd, 0.0);
  seen_.assign(nSlots_, 0);
}

void CapturePlan::SetScorer(int32_t slot, const float* w, double b) {
  scoreSlot_ = slot;
  scoreW_ = w;
  scoreB_ = b;
  itemScore_.assign(rows_, std::numeric_limits<double>::quiet_NaN());
}

bool CapturePlan::ReadsOutputOnlyTensor() const {
  return finalSlot_ != -1 || (nLayer_ > 0 && slotOfLayer_[nLayer_ - 1] != -1);
}

void CapturePlan::BeginDecode(int32_t nTokens, int32_t nOutputs) {
  nTokens_ = nTokens;
  nOutputs_ = nOutputs;
  nSeen_ = 0;
  stopped_ = false;
  std::fill(seen_.begin(), seen_.end(), 0);
}

std::string CapturePlan::DecodeError() const {
  if (!error_.empty()) return error_;
  if (nSeen_ == nSlots_) return "";
  std::string missing;
  for (int32_t l = 0; l < nLayer_; l++) {
    const int32_t s = slotOfLayer_[l];
    if (s >= 0 && !seen_[s]) missing += (missing.empty() ? "" : ", ") + ("l_out-" + std::to_string(l));
  }
  if (finalSlot_ >= 0 && !seen_[finalSlot_]) missing += (missing.empty() ? "" : ", ") + std::string("result_norm");
  return "this model's compute graph has no tensor named " + missing + "; capturing these layers is not supported for its architecture";
}

void CapturePlan::FinishMean(int32_t text, double count) {
  const double inv = count > 0 ? 1.0 / count : 0.0;
  for (int32_t s = 0; s < nSlots_; s++) {
    const double* a = acc_.data() + (static_cast<size_t>(s) * rows_ + text) * nEmbd_;
    float* o = out_[s] + static_cast<size_t>(text) * nEmbd_;
    for (int32_t e = 0; e < nEmbd_; e++) o[e] = static_cast<float>(a[e] * inv);
  }
}

// Which slot a tensor name refers to, -1 when none: "l_out-<n>" or "result_norm".
int32_t CapturePlan::SlotOf(const char* name) const {
  if (name[0] == 'l' && std::strncmp(name, "l_out-", 6) == 0) {
    const char* p = name + 6;
    int32_t v = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9' && v < (1 << 20)) v = v * 10 + (*p++ - '0');
    if (*p != '\0' || v >= nLayer_) return -1;
    return slotOfLayer_[v];
  }
  if (name[0] == 'r' && finalSlot_ >= 0 && std::strcmp(name, "result_norm") == 0) return finalSlot_;
  return -1;
}

void CapturePlan::CopyRows(struct ggml_tensor* t, int32_t slot) {
  if (t->type != GGML_TYPE_F32 || t->ne[0] != nEmbd_) {
    error_ = std::string("tensor ") + t->name + " is not float32 with n_embd columns";
    return;
  }
  bool tokenRows;
  if (t->ne[1] == nTokens_) {
    tokenRows = true;
  } else if (t->ne[1] == nOutputs_) {
    tokenRows = false;
  } else {
    error_ = std::string("tensor ") + t->name + " has an unexpected number of rows";
    return;
  }
  const bool host = t->buffer && L.ggml_backend_buffer_is_host(t->buffer);
  const size_t rowBytes = sizeof(float) * nEmbd_;
  if (t->nb[1] != rowBytes) {
    error_ = std::string("tensor ") + t->name + " is not contiguous";
    return;
  }
  for (const CaptureRun& run : runs) {
    const int32_t row = tokenRows ? run.tokenRow : run.outputRow;
    const size_t bytes = rowBytes * run.count;
    const float* src;
    if (host) {
      src = reinterpret_cast<const float*>(static_cast<const char*>(t->data) + rowBytes * row);
    } else {
      if (scratch_.size() < static_cast<size_t>(run.count) * nEmbd_) scratch_.resize(static_cast<size_t>(run.count) * nEmbd_);
      L.ggml_backend_tensor_get(t, scratch_.data(), rowBytes * row, bytes);
      src = scratch_.data();
    }
    if (slot == scoreSlot_) {
      // sequential double sum of exact float products: src/monitor/rule.ts computes the same
      const float* h = src + static_cast<size_t>(run.count - 1) * nEmbd_;
      double z = scoreB_;
      for (int32_t e = 0; e < nEmbd_; e++) z += static_cast<double>(scoreW_[e]) * static_cast<double>(h[e]);
      itemScore_[run.text] = z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
    }
    if (pool_ == POOL_LAST) {
      std::memcpy(out_[slot] + static_cast<size_t>(run.text) * nEmbd_, src, bytes);
    } else if (pool_ == POOL_TOKENS) {
      std::memcpy(out_[slot] + (static_cast<size_t>(offsets_[run.text]) + run.pos) * nEmbd_, src, bytes);
    } else {
      double* a = acc_.data() + (static_cast<size_t>(slot) * rows_ + run.text) * nEmbd_;
      for (int32_t r = 0; r < run.count; r++) {
        const float* s = src + static_cast<size_t>(r) * nEmbd_;
        for (int32_t e = 0; e < nEmbd_; e++) a[e] += s[e];
      }
    }
  }
}

// Called by ggml's scheduler on the worker thread, inside llama_decode: once with
// ask=true for every node (do we want its data?), and with ask=false after a wanted
// node was computed (return false to stop the graph).
bool CapturePlan::OnTensor(struct ggml_tensor* t, bool ask) {
  if (stopped_) {
    // Early exit: every node is "wanted", and after it is computed we say stop, so the
    // scheduler leaves each remaining split after one node.
    return ask ? true : false;
  }
  const int32_t slot = SlotOf(t->name);
  if (ask) return slot >= 0;
  if (slot < 0) return true;
  CopyRows(t, slot);
  if (!seen_[slot]) {
    seen_[slot] = 1;
    nSeen_++;
  }
  if (!error_.empty() || (earlyExit_ && nSeen_ == nSlots_)) {
    stopped_ = true;
    return false;
  }
  return true;
}
