#include "ContextJob.h"

#include "AddonContext.h"
#include "AddonState.h"

ContextJob::ContextJob(Napi::Env env, AddonContext* target, Napi::Object request, Napi::Value callback)
    : target_(target), deferred_(Napi::Promise::Deferred::New(env)) {
  requestRef_ = Napi::Persistent(request);
  if (callback.IsFunction()) callback_ = Napi::Persistent(callback.As<Napi::Function>());
  target_->Ref();
  target_->busy = true;
  target_->cancelled = false;
}

ContextJob::~ContextJob() {
  target_->busy = false;
  try {
    target_->Unref();
  } catch (...) {
    // environment going away: the reference is freed with it
  }
}

bool ContextJob::JsAlive(Napi::Env env) {
  AddonState* state = AddonState::Get(env);
  if (state->stopping) {
    target_->cancelled = true;
    return false;
  }
  napi_value result;
  if (state->noop.IsEmpty() || napi_call_function(env, env.Undefined(), state->noop.Value(), 0, nullptr, &result) != napi_ok) {
    // JS cannot run: the environment is being torn down
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    state->stopping = true;
    target_->cancelled = true;
    return false;
  }
  return true;
}

void ContextJob::CallBack(Napi::Env env, const std::initializer_list<napi_value>& args) {
  if (callback_.IsEmpty() || callbackFailed_ || !JsAlive(env)) return;
  try {
    callback_.Call(args);
  } catch (const Napi::Error& e) {
    // the caller's exception: stop the job, and reject with it once the work stopped
    callbackFailed_ = true;
    try {
      callbackError_ = Napi::Persistent(e.Value().As<Napi::Value>());
    } catch (...) {
    }
    target_->cancelled = true;
  } catch (...) {
    target_->cancelled = true;
  }
}

void ContextJob::Resolve(Napi::Env env, const std::function<Napi::Value()>& make) {
  try {
    if (callbackFailed_ && !callbackError_.IsEmpty()) {
      deferred_.Reject(callbackError_.Value());
      return;
    }
    deferred_.Resolve(make());
  } catch (...) {
    // environment going away: nobody is waiting for this promise
  }
}

void ContextJob::Reject(Napi::Env env, const std::string& message, const std::string& code) {
  try {
    if (callbackFailed_ && !callbackError_.IsEmpty()) {
      deferred_.Reject(callbackError_.Value());
      return;
    }
    Napi::Error err = Napi::Error::New(env, message);
    err.Set("code", Napi::String::New(env, code.empty() ? "DECODE_FAILED" : code));
    err.Set("nativeJob", Napi::Boolean::New(env, true));  // not the caller's own error
    deferred_.Reject(err.Value());
  } catch (...) {
    // environment going away
  }
}
