// safety-lens native addon: a small N-API surface over llama.cpp.
//   loadLibraries / loadBackend / devices   (AddonBackend.cpp)
//   AddonModel: load / info / tokenize       (AddonModel.cpp, ModelLoadWorker.cpp)
//   AddonContext: capture / decode / generate (AddonContext.cpp, ContextInitWorker.cpp,
//     BatchDecodeWorker.cpp, GenerateWorker.cpp; CapturePlan.cpp is the eval callback's plan,
//     ContextJob.cpp what the jobs share)
//   scatter                                 (AddonMath.cpp: covariance for the probes)
//   releaseMemory / mallocStats             (AddonMemory.cpp: malloc_trim after dispose)
//   quantize                                (QuantizeWorker.cpp: llama.cpp's quantizer, for tools)
#include <napi.h>

#include "AddonBackend.h"
#include "AddonMath.h"
#include "AddonMemory.h"
#include "AddonContext.h"
#include "AddonModel.h"
#include "AddonState.h"
#include "QuantizeWorker.h"

namespace {

// Frees what JS did not dispose when the environment (main thread or worker) ends.
// Node runs this after in-flight jobs finished (their promises could not be settled:
// ContextJob swallows that); a job still marked busy is only cancelled, never freed
// under a running thread.
void Cleanup(void* arg) {
  auto* state = static_cast<AddonState*>(arg);
  state->stopping = true;
  for (AddonContext* c : state->contexts) {
    c->cancelled = true;
    if (!c->busy) c->Free();
  }
  for (AddonModel* m : state->models) {
    if (m->contexts == 0) m->Free();
  }
  state->contexts.clear();
  state->models.clear();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // The module can be initialised twice in one environment (test runners that
  // reset their module registry require it again): keep one state per environment.
  AddonState* state = AddonState::Get(env);
  if (!state) {
    state = new AddonState();
    env.SetInstanceData<AddonState>(state);
    napi_add_env_cleanup_hook(env, Cleanup, state);
  }
  state->noop = Napi::Persistent(Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return info.Env().Undefined(); }, "noop"));
  AddonBackend::Init(env, exports);
  AddonMath::Init(env, exports);
  AddonMemory::Init(env, exports);
  exports.Set("quantize", Napi::Function::New(env, QuantizeWorker::Start, "quantize"));
  Napi::Function model = AddonModel::Define(env);
  Napi::Function context = AddonContext::Define(env);
  state->modelCtor = Napi::Persistent(model);
  state->contextCtor = Napi::Persistent(context);
  exports.Set("AddonModel", model);
  exports.Set("AddonContext", context);
  return exports;
}

}  // namespace

NODE_API_MODULE(safety_lens, Init)
