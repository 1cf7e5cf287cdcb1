// AddonMemory: handing freed memory back to the OS after a model is disposed, and
// the allocator's own counters (what the memory tests measure). Process-wide.
#pragma once
#include <napi.h>

namespace AddonMemory {
void Init(Napi::Env env, Napi::Object exports);
}
