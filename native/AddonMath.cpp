#include "AddonMath.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define SL_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define SL_MULTIVERSION
#endif

constexpr int kTile = 64;        // rows of the output each pass keeps in a float tile
constexpr int kFlushRows = 1024;  // data rows accumulated in float before adding into double

// acc[ii][j] += a[ii] * xr[j] for j in [j0, cols): the vectorised inner loop.
SL_MULTIVERSION
void RankOneTile(float* acc, const float* a, const float* xr, int tileRows, int j0, int cols) {
  for (int ii = 0; ii < tileRows; ii++) {
    const float ai = a[ii];
    float* row = acc + static_cast<size_t>(ii) * cols;
    for (int j = j0; j < cols; j++) row[j] += ai * xr[j];
  }
}

// Output rows [i0, i0 + tileRows) of the scatter matrix, columns >= i0 (upper part).
void ScatterTile(const float* X, int cols, const double* center, const uint32_t* rowIndex, size_t nRows, int i0, int tileRows,
                 double* G) {
  std::vector<float> acc(static_cast<size_t>(tileRows) * cols, 0.f);
  std::vector<float> xr(cols), a(tileRows);
  size_t sinceFlush = 0;
  auto flush = [&]() {
    for (int ii = 0; ii < tileRows; ii++) {
      double* g = G + static_cast<size_t>(i0 + ii) * cols;
      float* r = acc.data() + static_cast<size_t>(ii) * cols;
      for (int j = i0; j < cols; j++) g[j] += r[j];
      std::fill(r + i0, r + cols, 0.f);
    }
    sinceFlush = 0;
  };
  for (size_t k = 0; k < nRows; k++) {
    const float* x = X + static_cast<size_t>(rowIndex ? rowIndex[k] : k) * cols;
    for (int j = i0; j < cols; j++) xr[j] = static_cast<float>(x[j] - center[j]);
    for (int ii = 0; ii < tileRows; ii++) a[ii] = xr[i0 + ii];
    RankOneTile(acc.data(), a.data(), xr.data(), tileRows, i0, cols);
    if (++sinceFlush == kFlushRows) flush();
  }
  flush();
}

// scatter(X: Float32Array, rows, cols, center: Float64Array, rowIndex: Uint32Array | null, threads): Float64Array
Napi::Value Scatter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[0].IsTypedArray() || !info[3].IsTypedArray()) {
    throw Napi::TypeError::New(env, "scatter(X: Float32Array, rows, cols, center: Float64Array, rowIndex: Uint32Array | null, threads)");
  }
  Napi::Float32Array X = info[0].As<Napi::Float32Array>();
  const int64_t rows = info[1].As<Napi::Number>().Int64Value();
  const int cols = info[2].As<Napi::Number>().Int32Value();
  Napi::Float64Array center = info[3].As<Napi::Float64Array>();
  const uint32_t* rowIndex = nullptr;
  size_t nRows = static_cast<size_t>(rows);
  if (info[4].IsTypedArray()) {
    Napi::Uint32Array idx = info[4].As<Napi::Uint32Array>();
    rowIndex = idx.Data();
    nRows = idx.ElementLength();
    for (size_t k = 0; k < nRows; k++) {
      if (rowIndex[k] >= static_cast<uint64_t>(rows)) throw Napi::RangeError::New(env, "rowIndex out of range");
    }
  }
  int threads = std::max(1, info[5].As<Napi::Number>().Int32Value());
  if (rows < 0 || cols <= 0 || X.ElementLength() != static_cast<size_t>(rows) * cols || center.ElementLength() != static_cast<size_t>(cols)) {
    throw Napi::RangeError::New(env, "scatter: sizes do not match");
  }
  Napi::Float64Array out = Napi::Float64Array::New(env, static_cast<size_t>(cols) * cols);
  double* G = out.Data();
  std::memset(G, 0, sizeof(double) * cols * cols);
  const int nTiles = (cols + kTile - 1) / kTile;
  threads = std::min(threads, nTiles);
  // Tiles near the top have more work (upper part); deal them out round-robin.
  auto work = [&](int t) {
    for (int tile = t; tile < nTiles; tile += threads) {
      const int i0 = tile * kTile;
      ScatterTile(X.Data(), cols, center.Data(), rowIndex, nRows, i0, std::min(kTile, cols - i0), G);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; t++) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  // mirror the upper part
  for (int i = 0; i < cols; i++)
    for (int j = 0; j < i; j++) G[static_cast<size_t>(i) * cols + j] = G[static_cast<size_t>(j) * cols + i];
  return out;
}

}  // namespace

namespace AddonMath {
void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("scatter", Napi::Function::New(env, Scatter, "scatter"));
}
}  // namespace AddonMath
