// Per-environment state (one per Node main thread / worker thread): the class
// constructors and the live native objects, freed by a cleanup hook when the
// environment ends.
#pragma once
#include <napi.h>

#include <set>

class AddonModel;
class AddonContext;

struct AddonState {
  Napi::FunctionReference modelCtor;
  Napi::FunctionReference contextCtor;
  std::set<AddonModel*> models;
  std::set<AddonContext*> contexts;

  static AddonState* Get(Napi::Env env) { return env.GetInstanceData<AddonState>(); }
};
