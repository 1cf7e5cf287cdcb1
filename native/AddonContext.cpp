#include "AddonContext.h"

#include <algorithm>

#include "AddonModel.h"
#include "AddonState.h"
#include "BatchDecodeWorker.h"
#include "ContextInitWorker.h"
#include "GenerateWorker.h"
#include "GraphProbeWorker.h"

namespace {

uint32_t OptU32(Napi::Object o, const char* key, uint32_t def) {
  return o.Has(key) && o.Get(key).IsNumber() ? o.Get(key).As<Napi::Number>().Uint32Value() : def;
}

}  // namespace

Napi::Function AddonContext::Define(Napi::Env env) {
  return DefineClass(env, "AddonContext",
                     {
                         InstanceMethod("init", &AddonContext::Init),
                         InstanceMethod("capture", &AddonContext::Capture),
                         InstanceMethod("decode", &AddonContext::Decode),
                         InstanceMethod("generate", &AddonContext::Generate),
                         InstanceMethod("probeGraph", &AddonContext::ProbeGraph),
                         InstanceMethod("cancel", &AddonContext::Cancel),
                         InstanceMethod("seqRemove", &AddonContext::SeqRemove),
                         InstanceMethod("seqCopy", &AddonContext::SeqCopy),
                         InstanceMethod("info", &AddonContext::Info),
                         InstanceMethod("dispose", &AddonContext::Dispose),
                     });
}

// new AddonContext(model, { contextSize, batchSize, sequences, threads, capture, embeddings })
AddonContext::AddonContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AddonContext>(info) {
  Napi::Env env = info.Env();
  AddonState* state = AddonState::Get(env);
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject() ||
      !info[0].As<Napi::Object>().InstanceOf(state->modelCtor.Value())) {
    throw Napi::TypeError::New(env, "new AddonContext(model: AddonModel, options: object)");
  }
  model = Napi::ObjectWrap<AddonModel>::Unwrap(info[0].As<Napi::Object>());
  if (model->disposed || !model->model) throw Napi::Error::New(env, "model is disposed or not loaded");
  Napi::Object o = info[1].As<Napi::Object>();
  contextSize = OptU32(o, "contextSize", 4096);
  batchSize = OptU32(o, "batchSize", 512);
  sequences = OptU32(o, "sequences", 64);
  threads = static_cast<int32_t>(OptU32(o, "threads", 1));
  withCallback = !o.Has("capture") || o.Get("capture").ToBoolean().Value();
  embeddings = o.Has("embeddings") && o.Get("embeddings").ToBoolean().Value();
  flashAttention = o.Has("flashAttention") && o.Get("flashAttention").ToBoolean().Value();
  kvF16 = o.Has("kvCacheF16") && o.Get("kvCacheF16").ToBoolean().Value();
  if (contextSize < 1 || batchSize < 1 || sequences < 1 || sequences > 256 || threads < 1) {
    throw Napi::RangeError::New(env, "invalid context options");
  }
  // llama.cpp cuts the batch to the (unpadded) context size, reserves max(outputs, sequences)
  // output rows and asserts they fit in one batch: decode no more than it takes
  batchSize = std::min(batchSize, contextSize);
  if (sequences > batchSize) sequences = batchSize;
  modelRef = Napi::Persistent(info[0].As<Napi::Object>());
  model->contexts++;
  state->contexts.insert(this);
}

AddonContext::~AddonContext() { Free(); }

void AddonContext::Free() {
  if (ctx) {
    if (threadpool) L.llama_detach_threadpool(ctx);
    L.llama_free(ctx);
    ctx = nullptr;
  }
  if (threadpool && threadpoolFree) threadpoolFree(threadpool);
  threadpool = nullptr;
  if (!disposed && model) model->contexts--;
  disposed = true;
}

Napi::Value AddonContext::Init(const Napi::CallbackInfo& info) {
  auto* worker = new ContextInitWorker(info.Env(), this);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

static void RequireReady(Napi::Env env, AddonContext* c) {
  if (c->disposed || !c->ctx) throw Napi::Error::New(env, "context is disposed or not initialised");
  if (c->busy) throw Napi::Error::New(env, "context is busy");
}

// capture({ tokens, offsets, layers, pool, outputs, earlyExit }, onProgress?): Promise<{ decodeMs }>
Napi::Value AddonContext::Capture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env, this);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "capture(request: object, onProgress?)");
  auto* worker = new BatchDecodeWorker(env, this, BatchDecodeWorker::Mode::Capture, info[0].As<Napi::Object>(),
                                   info.Length() > 1 ? info[1] : env.Undefined());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// decode({ tokens, offsets, embeddings? }, onProgress?): Promise<{ decodeMs }>
Napi::Value AddonContext::Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env, this);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "decode(request: object, onProgress?)");
  auto* worker = new BatchDecodeWorker(env, this, BatchDecodeWorker::Mode::Decode, info[0].As<Napi::Object>(),
                                   info.Length() > 1 ? info[1] : env.Undefined());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// generate({ n, maxTokens, temperature, topK, topP, minP, seed, stop, ignoreEos, layers, pool, outputs },
//          onToken?(candidate, token, pieceBytes)): Promise<{ candidates, decodeMs, steps }>
// Continues from the prompt a prefill (capture/decode with keep: true) left in the KV cache.
Napi::Value AddonContext::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env, this);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "generate(request: object, onToken?)");
  auto* worker = new GenerateWorker(env, this, info[0].As<Napi::Object>(), info.Length() > 1 ? info[1] : env.Undefined());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

namespace {
// A sequence id and a position range [p0, p1) (-1 = open) from JS numbers.
bool SeqArgs(const Napi::CallbackInfo& info, size_t first, size_t count, std::vector<int32_t>& out) {
  for (size_t i = first; i < first + count; i++) {
    if (info.Length() <= i || !info[i].IsNumber()) return false;
    const double v = info[i].As<Napi::Number>().DoubleValue();
    if (!(v >= -1 && v <= 2147483647.0) || v != static_cast<double>(static_cast<int64_t>(v))) return false;
    out.push_back(static_cast<int32_t>(v));
  }
  return true;
}
}  // namespace

// seqRemove(seq, p0, p1): drops the sequence's cells in [p0, p1) (-1: open end, all positions).
Napi::Value AddonContext::SeqRemove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env, this);
  std::vector<int32_t> a;
  if (!SeqArgs(info, 0, 3, a) || a[0] < 0 || a[0] >= static_cast<int32_t>(sequences)) throw Napi::RangeError::New(env, "seqRemove(seq, p0, p1): bad arguments");
  L.llama_memory_seq_rm(L.llama_get_memory(ctx), a[0], a[1], a[2]);
  if (prefilledSeq == a[0]) {
    prefilledTokens = 0;
    lastLogitsIndex = -1;
  }
  return env.Undefined();
}

// seqCopy(src, dst, p0, p1): dst also holds src's cells in [p0, p1) (cells are shared, not copied).
Napi::Value AddonContext::SeqCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env, this);
  std::vector<int32_t> a;
  const int32_t n = static_cast<int32_t>(sequences);
  if (!SeqArgs(info, 0, 4, a) || a[0] < 0 || a[0] >= n || a[1] < 0 || a[1] >= n) throw Napi::RangeError::New(env, "seqCopy(src, dst, p0, p1): bad arguments");
  L.llama_memory_seq_cp(L.llama_get_memory(ctx), a[0], a[1], a[2], a[3]);
  return env.Undefined();
}

// probeGraph(): Promise<{ layers: Int32Array, resultNorm, nodes, aborted, ms }>: the layers whose
// output (l_out-<n>) and whether the final norm (result_norm) the compute graph names.
Napi::Value AddonContext::ProbeGraph(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireReady(env, this);
  if (!withCallback) throw Napi::Error::New(env, "this context was created without the capture callback");
  auto* worker = new GraphProbeWorker(env, this);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

Napi::Value AddonContext::Cancel(const Napi::CallbackInfo& info) {
  cancelled = true;
  return info.Env().Undefined();
}

Napi::Value AddonContext::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("contextSize", contextSize);
  o.Set("batchSize", batchSize);
  o.Set("sequences", sequences);
  o.Set("threads", threads);
  return o;
}

Napi::Value AddonContext::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy) throw Napi::Error::New(env, "context is busy");
  Free();
  AddonState::Get(env)->contexts.erase(this);
  modelRef.Reset();
  return env.Undefined();
}

bool AddonContext::EvalCallback(struct ggml_tensor* t, bool ask, void* userData) {
  auto* c = static_cast<AddonContext*>(userData);
  if (c->probe) return c->probe->OnTensor(t, ask);
  CapturePlan* plan = c->plan;
  if (!plan) return ask ? false : true;
  return plan->OnTensor(t, ask);
}

bool AddonContext::AbortCallback(void* userData) {
  auto* c = static_cast<AddonContext*>(userData);
  return c->cancelled.load() || (c->probe && c->probe->StopNow());
}
