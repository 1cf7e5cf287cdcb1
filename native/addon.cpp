// safety-lens native addon: a small N-API surface over llama.cpp.
//   loadLibraries / loadBackend / devices   (AddonBackend.cpp)
//   AddonModel                              (AddonModel.cpp)
//   AddonContext: capture / decode / generate (AddonContext.cpp, CaptureWorker.cpp, GenerateWorker.cpp)
//   scatter                                 (AddonMath.cpp: covariance for the probes)
#include <napi.h>

#include "AddonBackend.h"
#include "AddonMath.h"
#include "AddonContext.h"
#include "AddonModel.h"
#include "AddonState.h"

namespace {

// Frees what JS did not dispose when the environment (main thread or worker) ends.
void Cleanup(void* arg) {
  auto* state = static_cast<AddonState*>(arg);
  for (AddonContext* c : state->contexts) {
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
  AddonBackend::Init(env, exports);
  AddonMath::Init(env, exports);
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
