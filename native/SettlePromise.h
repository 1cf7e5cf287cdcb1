// Settling a worker's promise from OnOK/OnError. While the environment is torn down (a worker
// thread that exits or is terminated) settling throws, and nobody waits for the promise any
// more: that is swallowed, never thrown across N-API.
#pragma once
#include <napi.h>

inline void ResolveQuietly(Napi::Promise::Deferred& deferred, Napi::Value value) {
  try {
    deferred.Resolve(value);
  } catch (...) {
  }
}

inline void RejectQuietly(Napi::Promise::Deferred& deferred, Napi::Value error) {
  try {
    deferred.Reject(error);
  } catch (...) {
  }
}
