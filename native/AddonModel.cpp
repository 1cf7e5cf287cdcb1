#include "AddonModel.h"

#include "AddonState.h"
#include "ModelLoadWorker.h"

namespace {

std::string MetaString(const llama_model* model, const char* key) {
  std::vector<char> buf(256);
  int32_t n = L.llama_model_meta_val_str(model, key, buf.data(), buf.size());
  if (n < 0) return "";
  if (static_cast<size_t>(n) >= buf.size()) {
    buf.resize(n + 1);
    L.llama_model_meta_val_str(model, key, buf.data(), buf.size());
  }
  return std::string(buf.data());
}

}  // namespace

Napi::Function AddonModel::Define(Napi::Env env) {
  return DefineClass(env, "AddonModel",
                     {
                         InstanceMethod("load", &AddonModel::Load),
                         InstanceMethod("info", &AddonModel::Info),
                         InstanceMethod("tokenize", &AddonModel::Tokenize),
                         InstanceMethod("detokenize", &AddonModel::Detokenize),
                         InstanceMethod("dispose", &AddonModel::Dispose),
                     });
}

// new AddonModel(path, { gpuLayers, useMmap, devices: string[] })
AddonModel::AddonModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AddonModel>(info) {
  Napi::Env env = info.Env();
  if (!LlamaApiLoaded()) throw Napi::Error::New(env, "llama.cpp libraries are not loaded");
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsObject()) {
    throw Napi::TypeError::New(env, "new AddonModel(path: string, options: object)");
  }
  path = info[0].As<Napi::String>().Utf8Value();
  Napi::Object opts = info[1].As<Napi::Object>();
  if (opts.Has("gpuLayers")) gpuLayers = opts.Get("gpuLayers").As<Napi::Number>().Int32Value();
  if (opts.Has("useMmap")) useMmap = opts.Get("useMmap").As<Napi::Boolean>().Value();
  if (opts.Has("devices") && opts.Get("devices").IsArray()) {
    Napi::Array d = opts.Get("devices").As<Napi::Array>();
    for (uint32_t i = 0; i < d.Length(); i++) deviceNames.push_back(d.Get(i).As<Napi::String>().Utf8Value());
  }
  AddonState::Get(env)->models.insert(this);
}

AddonModel::~AddonModel() {
  Free();
}

void AddonModel::Free() {
  if (model) {
    L.llama_model_free(model);
    model = nullptr;
    vocab = nullptr;
  }
  disposed = true;
}

Napi::Value AddonModel::Load(const Napi::CallbackInfo& info) {
  auto* worker = new ModelLoadWorker(info.Env(), this);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

static void RequireModel(Napi::Env env, AddonModel* m) {
  if (m->disposed || !m->model) throw Napi::Error::New(env, "model is disposed or not loaded");
}

Napi::Value AddonModel::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireModel(env, this);
  Napi::Object o = Napi::Object::New(env);
  char desc[256] = {0};
  L.llama_model_desc(model, desc, sizeof(desc));
  o.Set("arch", MetaString(model, "general.architecture"));
  o.Set("name", MetaString(model, "general.name"));
  o.Set("description", std::string(desc));
  o.Set("nLayer", L.llama_model_n_layer(model));
  o.Set("nEmbd", L.llama_model_n_embd(model));
  o.Set("nCtxTrain", L.llama_model_n_ctx_train(model));
  o.Set("nVocab", L.llama_vocab_n_tokens(vocab));
  o.Set("nParams", static_cast<double>(L.llama_model_n_params(model)));
  o.Set("sizeBytes", static_cast<double>(L.llama_model_size(model)));
  o.Set("hasEncoder", L.llama_model_has_encoder(model));
  const char* tmpl = L.llama_model_chat_template(model, nullptr);
  o.Set("chatTemplate", tmpl ? Napi::Value(Napi::String::New(env, tmpl)) : env.Null());
  llama_token bos = L.llama_vocab_bos(vocab), eos = L.llama_vocab_eos(vocab), eot = L.llama_vocab_eot(vocab);
  o.Set("bosId", bos >= 0 ? Napi::Value(Napi::Number::New(env, bos)) : env.Null());
  o.Set("bosToken", bos >= 0 ? Napi::Value(Napi::String::New(env, LlamaTokenPiece(vocab, bos, true))) : env.Null());
  o.Set("eosToken", eos >= 0 ? Napi::Value(Napi::String::New(env, LlamaTokenPiece(vocab, eos, true))) : env.Null());
  o.Set("eotToken", eot >= 0 ? Napi::Value(Napi::String::New(env, LlamaTokenPiece(vocab, eot, true))) : env.Null());
  o.Set("addBos", L.llama_vocab_get_add_bos(vocab));
  o.Set("addEos", L.llama_vocab_get_add_eos(vocab));
  return o;
}

// tokenize(text, addSpecial, parseSpecial): Int32Array
Napi::Value AddonModel::Tokenize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireModel(env, this);
  if (info.Length() < 3 || !info[0].IsString()) throw Napi::TypeError::New(env, "tokenize(text, addSpecial, parseSpecial)");
  std::string text = info[0].As<Napi::String>().Utf8Value();
  bool addSpecial = info[1].ToBoolean().Value();
  bool parseSpecial = info[2].ToBoolean().Value();
  if (text.size() > static_cast<size_t>(INT32_MAX / 2)) throw Napi::RangeError::New(env, "text is too long to tokenize");
  std::vector<llama_token> toks(text.size() + 8);
  int32_t n = L.llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), toks.data(),
                               static_cast<int32_t>(toks.size()), addSpecial, parseSpecial);
  if (n < 0) {
    toks.resize(-n);
    n = L.llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), toks.data(),
                         static_cast<int32_t>(toks.size()), addSpecial, parseSpecial);
  }
  if (n < 0) throw Napi::Error::New(env, "tokenization failed");
  Napi::Int32Array out = Napi::Int32Array::New(env, n);
  std::copy(toks.begin(), toks.begin() + n, out.Data());
  return out;
}

// detokenize(tokens: Int32Array, special: boolean): string
Napi::Value AddonModel::Detokenize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireModel(env, this);
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "detokenize(tokens: Int32Array)");
  Napi::Int32Array toks = info[0].As<Napi::Int32Array>();
  bool special = info.Length() > 1 && info[1].ToBoolean().Value();
  int32_t nVocab = L.llama_vocab_n_tokens(vocab);
  std::string out;
  for (size_t i = 0; i < toks.ElementLength(); i++) {
    if (toks[i] < 0 || toks[i] >= nVocab) throw Napi::RangeError::New(env, "token id out of range");
    out += LlamaTokenPiece(vocab, toks[i], special);
  }
  return Napi::String::New(env, out);
}

Napi::Value AddonModel::Dispose(const Napi::CallbackInfo& info) {
  if (contexts > 0) throw Napi::Error::New(info.Env(), "dispose the model's contexts first");
  Free();
  AddonState::Get(info.Env())->models.erase(this);
  return info.Env().Undefined();
}
