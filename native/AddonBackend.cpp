#include "AddonBackend.h"

#include "LlamaApi.h"

namespace {

const char* DeviceTypeName(enum ggml_backend_dev_type t) {
  switch (t) {
    case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
    case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
    case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
    case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
    default: return "other";
  }
}

// loadLibraries(libraries: string[], cpuBackendDir: string): void
Napi::Value LoadLibraries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "loadLibraries(libraries: string[], cpuBackendDir: string)");
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<std::string> libs;
  for (uint32_t i = 0; i < arr.Length(); i++) libs.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
  std::string err;
  if (!LlamaApiLoad(libs, info[1].As<Napi::String>().Utf8Value(), err)) throw Napi::Error::New(env, err);
  return env.Undefined();
}

// loadBackend(path: string): string  (the registry name, e.g. "CUDA")
Napi::Value LoadBackend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!LlamaApiLoaded()) throw Napi::Error::New(env, "llama.cpp libraries are not loaded");
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadBackend(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string err, reg;
  if (!LlamaApiLoadBackend(path, reg, err)) throw Napi::Error::New(env, err);
  return Napi::String::New(env, reg);
}

// devices(): { index, name, description, type, backend, memoryFree, memoryTotal }[]
Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  if (!LlamaApiLoaded()) return out;
  for (size_t i = 0; i < L.ggml_backend_dev_count(); i++) {
    ggml_backend_dev_t dev = L.ggml_backend_dev_get(i);
    size_t freeMem = 0, totalMem = 0;
    L.ggml_backend_dev_memory(dev, &freeMem, &totalMem);
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", Napi::Number::New(env, static_cast<double>(i)));
    d.Set("name", Napi::String::New(env, L.ggml_backend_dev_name(dev)));
    d.Set("description", Napi::String::New(env, L.ggml_backend_dev_description(dev)));
    d.Set("type", Napi::String::New(env, DeviceTypeName(L.ggml_backend_dev_type(dev))));
    d.Set("backend", Napi::String::New(env, L.ggml_backend_reg_name(L.ggml_backend_dev_backend_reg(dev))));
    d.Set("memoryFree", Napi::Number::New(env, static_cast<double>(freeMem)));
    d.Set("memoryTotal", Napi::Number::New(env, static_cast<double>(totalMem)));
    out.Set(static_cast<uint32_t>(out.Length()), d);
  }
  return out;
}

}  // namespace

namespace AddonBackend {
void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("loadLibraries", Napi::Function::New(env, LoadLibraries, "loadLibraries"));
  exports.Set("loadBackend", Napi::Function::New(env, LoadBackend, "loadBackend"));
  exports.Set("devices", Napi::Function::New(env, Devices, "devices"));
}
}  // namespace AddonBackend
