#include "ContextInitWorker.h"

#include "AddonContext.h"
#include "AddonModel.h"
#include "SettlePromise.h"

ContextInitWorker::ContextInitWorker(Napi::Env env, AddonContext* target)
    : Napi::AsyncWorker(env, "SafetyLensContextInit"), target_(target), deferred_(Napi::Promise::Deferred::New(env)) {
  target_->Ref();
}

ContextInitWorker::~ContextInitWorker() {
  try {
    target_->Unref();
  } catch (...) {
    // environment going away
  }
}

void ContextInitWorker::Execute() {
  LlamaLogClear();
  llama_context_params p = L.llama_context_default_params();
  p.n_ctx = target_->contextSize;
  p.n_batch = target_->batchSize;   // n_batch == n_ubatch: one llama_decode is one graph,
  p.n_ubatch = target_->batchSize;  // so the callback's rows map to our batch in order
  p.n_seq_max = target_->sequences;
  p.n_threads = target_->threads;
  p.n_threads_batch = target_->threads;
  p.kv_unified = true;  // one stream: llama.cpp keeps batch order (split_simple)
  p.embeddings = target_->embeddings;
  p.no_perf = true;
  p.flash_attn_type = target_->flashAttention ? LLAMA_FLASH_ATTN_TYPE_AUTO : LLAMA_FLASH_ATTN_TYPE_DISABLED;
  // F32 keys and values by default: with F16 ones a 1e-7 difference in a key can flip its
  // rounding, so the same text's hidden states drift by ~1e-4 between batch shapes.
  p.type_k = target_->kvF16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
  p.type_v = target_->kvF16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
  if (target_->withCallback) {
    p.cb_eval = AddonContext::EvalCallback;
    p.cb_eval_user_data = target_;
  }
  p.abort_callback = AddonContext::AbortCallback;
  p.abort_callback_data = target_;
  ctx_ = L.llama_init_from_model(target_->model->model, p);
  if (!ctx_) {
    std::string log = LlamaLogLastErrors();
    SetError("llama.cpp could not create a context" + (log.empty() ? "" : ": " + log));
    return;
  }
  if (target_->threads > 1) {
    ggml_backend_dev_t cpu = L.ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = cpu ? L.ggml_backend_dev_backend_reg(cpu) : nullptr;
    using NewFn = ggml_threadpool* (*)(ggml_threadpool_params*);
    auto tpNew = reg ? reinterpret_cast<NewFn>(L.ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new")) : nullptr;
    tpFree_ = reg ? reinterpret_cast<void (*)(ggml_threadpool*)>(L.ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free")) : nullptr;
    if (tpNew && tpFree_) {
      ggml_threadpool_params tpp = L.ggml_threadpool_params_default(target_->threads);
      threadpool_ = tpNew(&tpp);
      if (threadpool_) L.llama_attach_threadpool(ctx_, threadpool_, threadpool_);
    }
  }
}

void ContextInitWorker::OnOK() {
  if (target_->disposed) {  // disposed (or the environment ended) while initialising
    if (threadpool_) L.llama_detach_threadpool(ctx_);
    L.llama_free(ctx_);
    if (threadpool_ && tpFree_) tpFree_(threadpool_);
    RejectQuietly(deferred_, Napi::Error::New(Env(), "context was disposed while initialising").Value());
    return;
  }
  target_->ctx = ctx_;
  target_->threadpool = threadpool_;
  target_->threadpoolFree = tpFree_;
  target_->contextSize = L.llama_n_ctx(ctx_);
  target_->batchSize = L.llama_n_batch(ctx_);  // what llama.cpp accepts per llama_decode
  ResolveQuietly(deferred_, Env().Undefined());  // environment going away: the cleanup hook frees the context
}

void ContextInitWorker::OnError(const Napi::Error& e) { RejectQuietly(deferred_, e.Value()); }
