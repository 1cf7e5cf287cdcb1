#include "ModelLoadWorker.h"

#include "AddonModel.h"
#include "SettlePromise.h"

ModelLoadWorker::ModelLoadWorker(Napi::Env env, AddonModel* target)
    : Napi::AsyncWorker(env, "SafetyLensModelLoad"), target_(target), deferred_(Napi::Promise::Deferred::New(env)) {
  target_->Ref();
}

ModelLoadWorker::~ModelLoadWorker() {
  try {
    target_->Unref();
  } catch (...) {
    // environment going away
  }
}

void ModelLoadWorker::Execute() {
  LlamaLogClear();
  llama_model_params params = L.llama_model_default_params();
  if (!target_->useMmap) params.load_mode = LLAMA_LOAD_MODE_NONE;
  params.n_gpu_layers = target_->gpuLayers;
  // NULL-terminated device list: only the devices asked for (none = CPU only).
  for (const auto& want : target_->deviceNames) {
    for (size_t i = 0; i < L.ggml_backend_dev_count(); i++) {
      ggml_backend_dev_t dev = L.ggml_backend_dev_get(i);
      if (want == L.ggml_backend_dev_name(dev)) devices_.push_back(dev);
    }
  }
  devices_.push_back(nullptr);
  params.devices = devices_.data();
  model_ = L.llama_model_load_from_file(target_->path.c_str(), params);
  if (!model_) {
    std::string log = LlamaLogLastErrors();
    SetError("llama.cpp could not load " + target_->path + (log.empty() ? "" : ": " + log));
  }
}

void ModelLoadWorker::OnOK() {
  if (target_->disposed) {  // disposed (or the environment ended) while loading
    L.llama_model_free(model_);
    RejectQuietly(deferred_, Napi::Error::New(Env(), "model was disposed while loading").Value());
    return;
  }
  target_->model = model_;
  target_->vocab = L.llama_model_get_vocab(model_);
  ResolveQuietly(deferred_, Env().Undefined());  // environment going away: the cleanup hook frees the model
}

void ModelLoadWorker::OnError(const Napi::Error& e) { RejectQuietly(deferred_, e.Value()); }
