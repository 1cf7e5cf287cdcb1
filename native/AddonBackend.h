// AddonBackend: loading llama.cpp's libraries and its compute backends, and
// listing the devices they found. Process-wide; see LlamaApi.h.
#pragma once
#include <napi.h>

namespace AddonBackend {
void Init(Napi::Env env, Napi::Object exports);
}
