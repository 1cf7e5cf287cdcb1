// Per-environment state (one per Node main thread / worker thread): the class
// constructors, the live native objects, freed by a cleanup hook when the
// environment ends, and whether that environment is stopping.
#pragma once
#include <napi.h>

#include <atomic>
#include <set>

class AddonModel;
class AddonContext;

struct AddonState {
  Napi::FunctionReference modelCtor;
  Napi::FunctionReference contextCtor;
  // A function that does nothing: calling it tells whether JS can still run here.
  Napi::FunctionReference noop;
  std::set<AddonModel*> models;
  std::set<AddonContext*> contexts;
  // Set once a call into JS failed because the environment is being torn down (a
  // worker thread that exits or is terminated): running jobs are then cancelled and
  // nothing calls into JS again.
  std::atomic<bool> stopping{false};

  static AddonState* Get(Napi::Env env) { return env.GetInstanceData<AddonState>(); }
};
