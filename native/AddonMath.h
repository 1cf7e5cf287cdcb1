// AddonMath: the one numeric kernel the probes need natively: the scatter
// matrix sum (x - c)(x - c)^T of a large feature matrix (20,000 x 896 is 16
// GFLOP: ~14 s in JavaScript, well under a second here), multithreaded.
#pragma once
#include <napi.h>

namespace AddonMath {
void Init(Napi::Env env, Napi::Object exports);
}
