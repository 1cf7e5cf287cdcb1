// ContextJob: what every job on an AddonContext shares (BatchDecodeWorker,
// GenerateWorker): it marks the context busy and keeps it alive while the job runs,
// keeps the request's JS objects alive, and settles the job's promise. Settling and
// calling back into JS never throw: while the environment is being torn down (a
// worker thread that exits or is terminated mid-job) N-API calls fail, and an
// exception crossing N-API there would abort the whole process.
#pragma once
#include <napi.h>

#include <functional>
#include <string>

class AddonContext;

class ContextJob {
 public:
  ContextJob(Napi::Env env, AddonContext* target, Napi::Object request, Napi::Value callback);
  ~ContextJob();
  ContextJob(const ContextJob&) = delete;
  ContextJob& operator=(const ContextJob&) = delete;

  Napi::Promise Promise() { return deferred_.Promise(); }
  AddonContext* Target() const { return target_; }

  // On the JS thread: false when the environment is stopping (then the job is
  // cancelled so that it ends at its next check).
  bool JsAlive(Napi::Env env);
  // Calls the request's callback with these arguments; an exception it throws is kept
  // and rethrown to the caller when the job settles (after the native work stopped).
  void CallBack(Napi::Env env, const std::initializer_list<napi_value>& args);
  void Resolve(Napi::Env env, const std::function<Napi::Value()>& make);
  void Reject(Napi::Env env, const std::string& message, const std::string& code);

 private:
  AddonContext* target_;
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference requestRef_;
  Napi::FunctionReference callback_;
  Napi::Reference<Napi::Value> callbackError_;
  bool callbackFailed_ = false;
};
