// LlamaApi: the llama.cpp / ggml functions safety-lens calls, resolved at run
// time from node-llama-cpp's prebuilt shared libraries.
//
// The addon is compiled against llama.cpp's headers (extracted at build time)
// but links no llama.cpp library. Loading at run time lets one addon binary use
// the CPU libraries and, on request, add a CUDA, Vulkan or Metal backend from
// the matching @node-llama-cpp/<platform> package, and turns a missing library
// into an error message instead of a failed `require`.
#pragma once

#include <string>
#include <vector>

#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#define SAFETY_LENS_LLAMA_FUNCTIONS(X) \
  X(llama_backend_init)                \
  X(llama_log_set)                     \
  X(llama_model_default_params)        \
  X(llama_context_default_params)      \
  X(llama_model_load_from_file)        \
  X(llama_model_free)                  \
  X(llama_init_from_model)             \
  X(llama_free)                        \
  X(llama_model_get_vocab)             \
  X(llama_model_n_layer)               \
  X(llama_model_n_embd)                \
  X(llama_model_n_ctx_train)           \
  X(llama_model_meta_val_str)          \
  X(llama_model_desc)                  \
  X(llama_model_size)                  \
  X(llama_model_n_params)              \
  X(llama_model_chat_template)         \
  X(llama_model_has_encoder)           \
  X(llama_model_quantize_default_params) \
  X(llama_model_quantize)              \
  X(llama_vocab_n_tokens)              \
  X(llama_vocab_bos)                   \
  X(llama_vocab_eos)                   \
  X(llama_vocab_eot)                   \
  X(llama_vocab_get_add_bos)           \
  X(llama_vocab_get_add_eos)           \
  X(llama_vocab_is_eog)                \
  X(llama_token_to_piece)              \
  X(llama_tokenize)                    \
  X(llama_batch_init)                  \
  X(llama_batch_free)                  \
  X(llama_decode)                      \
  X(llama_get_memory)                  \
  X(llama_memory_clear)                \
  X(llama_memory_seq_rm)               \
  X(llama_memory_seq_cp)               \
  X(llama_n_ctx)                       \
  X(llama_n_batch)                     \
  X(llama_n_ubatch)                    \
  X(llama_n_seq_max)                   \
  X(llama_set_n_threads)               \
  X(llama_set_embeddings)              \
  X(llama_get_embeddings_ith)          \
  X(llama_get_logits_ith)              \
  X(llama_sampler_chain_default_params) \
  X(llama_sampler_chain_init)          \
  X(llama_sampler_chain_add)           \
  X(llama_sampler_init_greedy)         \
  X(llama_sampler_init_dist)           \
  X(llama_sampler_init_top_k)          \
  X(llama_sampler_init_top_p)          \
  X(llama_sampler_init_min_p)          \
  X(llama_sampler_init_temp)           \
  X(llama_sampler_sample)              \
  X(llama_sampler_free)                \
  X(llama_attach_threadpool)           \
  X(llama_detach_threadpool)           \
  X(ggml_threadpool_params_default)    \
  X(ggml_backend_reg_get_proc_address) \
  X(ggml_backend_dev_by_type)          \
  X(ggml_backend_tensor_get)           \
  X(ggml_backend_buffer_is_host)       \
  X(ggml_backend_load)                 \
  X(ggml_backend_load_all_from_path)   \
  X(ggml_backend_dev_count)            \
  X(ggml_backend_dev_get)              \
  X(ggml_backend_dev_type)             \
  X(ggml_backend_dev_name)             \
  X(ggml_backend_dev_description)      \
  X(ggml_backend_dev_memory)           \
  X(ggml_backend_dev_backend_reg)      \
  X(ggml_backend_reg_name)

struct LlamaApi {
#define SAFETY_LENS_DECLARE(name) decltype(&::name) name = nullptr;
  SAFETY_LENS_LLAMA_FUNCTIONS(SAFETY_LENS_DECLARE)
#undef SAFETY_LENS_DECLARE
};

// The process-wide function table; valid once LlamaApiLoad succeeded.
extern LlamaApi L;

// Opens the given libraries (llama, ggml, ggml-base; full paths, in that order),
// resolves every function and loads the CPU backends found in cpuBackendDir.
// Once per process, under a lock (worker threads may race here): idempotent for
// the same paths; a second, different set is refused. On failure returns false
// and sets err.
bool LlamaApiLoad(const std::vector<std::string>& libraries, const std::string& cpuBackendDir, std::string& err);
bool LlamaApiLoaded();
const std::vector<std::string>& LlamaApiLibraries();

// Loads one extra backend library (CUDA, Vulkan) once per process; returns its
// registry name, or false with the loader's message (e.g. a missing libcudart).
bool LlamaApiLoadBackend(const std::string& path, std::string& regName, std::string& err);

// A token's text (raw bytes; UTF-8 may be split across tokens).
std::string LlamaTokenPiece(const llama_vocab* vocab, llama_token token, bool special);

// llama.cpp's log: by default kept, not printed (SAFETY_LENS_LOG=1 prints it to
// stderr). The last error/warning lines are attached to error messages.
void LlamaLogClear();
std::string LlamaLogLastErrors();
