#include "QuantizeWorker.h"

#include "SettlePromise.h"

#include <utility>

namespace {

// The quantization names the tools accept, as llama.cpp's file types (llama.h).
bool FtypeOf(const std::string& name, llama_ftype& out) {
  if (name == "f16") out = LLAMA_FTYPE_MOSTLY_F16;
  else if (name == "q8_0") out = LLAMA_FTYPE_MOSTLY_Q8_0;
  else if (name == "q4_k_m") out = LLAMA_FTYPE_MOSTLY_Q4_K_M;
  else return false;
  return true;
}

}  // namespace

Napi::Value QuantizeWorker::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!LlamaApiLoaded()) throw Napi::Error::New(env, "llama.cpp libraries are not loaded");
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString() ||
      (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNumber())) {
    throw Napi::TypeError::New(env, "quantize(input: string, output: string, type: string, threads?: number)");
  }
  llama_ftype ftype;
  const std::string type = info[2].As<Napi::String>().Utf8Value();
  if (!FtypeOf(type, ftype)) throw Napi::RangeError::New(env, "type must be \"f16\", \"q8_0\" or \"q4_k_m\", got \"" + type + "\"");
  const int32_t threads = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : 1;
  if (threads < 1) throw Napi::RangeError::New(env, "threads must be at least 1");
  auto* worker = new QuantizeWorker(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(), ftype, threads);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

QuantizeWorker::QuantizeWorker(Napi::Env env, std::string input, std::string output, llama_ftype ftype, int32_t threads)
    : Napi::AsyncWorker(env, "SafetyLensQuantize"),
      deferred_(Napi::Promise::Deferred::New(env)),
      input_(std::move(input)),
      output_(std::move(output)),
      ftype_(ftype),
      threads_(threads) {}

void QuantizeWorker::Execute() {
  LlamaLogClear();
  llama_model_quantize_params params = L.llama_model_quantize_default_params();
  params.nthread = threads_;
  params.ftype = ftype_;
  // llama_model_quantize catches its own exceptions and returns non-zero; its log says why.
  if (L.llama_model_quantize(input_.c_str(), output_.c_str(), &params) != 0) {
    std::string log = LlamaLogLastErrors();
    SetError("llama.cpp could not quantize " + input_ + (log.empty() ? "" : ": " + log));
  }
}

void QuantizeWorker::OnOK() { ResolveQuietly(deferred_, Env().Undefined()); }

void QuantizeWorker::OnError(const Napi::Error& e) { RejectQuietly(deferred_, e.Value()); }
