#include "LlamaApi.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>

#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#endif

LlamaApi L;

namespace {

std::mutex g_mutex;
bool g_loaded = false;
std::vector<std::string> g_libraries;
std::vector<void*> g_handles;
std::map<std::string, std::string> g_backends;  // library path -> registry name

std::mutex g_log_mutex;
std::deque<std::string> g_log_lines;
std::string g_log_partial;
bool g_log_echo = false;

void* OpenLibrary(const std::string& path, std::string& err) {
#ifdef _WIN32
  int n = MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, nullptr, 0);
  std::wstring wpath(n, L'\0');
  MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, &wpath[0], n);
  HMODULE h = LoadLibraryExW(wpath.c_str(), nullptr, LOAD_WITH_ALTERED_SEARCH_PATH);
  if (!h) err = "LoadLibrary failed for " + path + " (error " + std::to_string(GetLastError()) + ")";
  return reinterpret_cast<void*>(h);
#else
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    err = e ? e : ("dlopen failed for " + path);
  }
  return h;
#endif
}

void* FindSymbol(const char* name) {
  for (void* h : g_handles) {
#ifdef _WIN32
    void* p = reinterpret_cast<void*>(GetProcAddress(reinterpret_cast<HMODULE>(h), name));
#else
    void* p = dlsym(h, name);
#endif
    if (p) return p;
  }
  return nullptr;
}

void LogCallback(enum ggml_log_level level, const char* text, void*) {
  if (!text) return;
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (g_log_echo) fputs(text, stderr);
  // llama.cpp logs in pieces; keep whole lines of warnings and errors.
  if (level == GGML_LOG_LEVEL_CONT) {
    g_log_partial += text;
  } else {
    g_log_partial = (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) ? text : "";
    if (level != GGML_LOG_LEVEL_ERROR && level != GGML_LOG_LEVEL_WARN) return;
  }
  size_t nl;
  while ((nl = g_log_partial.find('\n')) != std::string::npos) {
    std::string line = g_log_partial.substr(0, nl);
    g_log_partial.erase(0, nl + 1);
    if (!line.empty()) {
      g_log_lines.push_back(line);
      if (g_log_lines.size() > 8) g_log_lines.pop_front();
    }
  }
}

}  // namespace

bool LlamaApiLoad(const std::vector<std::string>& libraries, const std::string& cpuBackendDir, std::string& err) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_loaded) {
    if (libraries == g_libraries) return true;
    err = "llama.cpp libraries are already loaded from " + (g_libraries.empty() ? std::string("?") : g_libraries[0]) +
          "; one process can use one set";
    return false;
  }
  std::vector<void*> handles;
  for (const auto& path : libraries) {
    void* h = OpenLibrary(path, err);
    if (!h) return false;
    handles.push_back(h);
  }
  g_handles = handles;
  LlamaApi api;
  std::string missing;
#define SAFETY_LENS_RESOLVE(name)                                              \
  api.name = reinterpret_cast<decltype(api.name)>(FindSymbol(#name));         \
  if (!api.name) missing += (missing.empty() ? "" : ", ") + std::string(#name);
  SAFETY_LENS_LLAMA_FUNCTIONS(SAFETY_LENS_RESOLVE)
#undef SAFETY_LENS_RESOLVE
  if (!missing.empty()) {
    err = "the llama.cpp libraries lack functions this addon was built for (" + missing +
          "); reinstall so node-llama-cpp and its prebuilt binaries match";
    g_handles.clear();
    return false;
  }
  L = api;
  const char* echo = getenv("SAFETY_LENS_LOG");
  g_log_echo = echo && echo[0] && strcmp(echo, "0") != 0;
  L.llama_log_set(LogCallback, nullptr);
  L.llama_backend_init();
  L.ggml_backend_load_all_from_path(cpuBackendDir.c_str());
  bool haveCpu = false;
  for (size_t i = 0; i < L.ggml_backend_dev_count(); i++) {
    if (L.ggml_backend_dev_type(L.ggml_backend_dev_get(i)) == GGML_BACKEND_DEVICE_TYPE_CPU) haveCpu = true;
  }
  if (!haveCpu) {
    err = "no llama.cpp CPU backend could be loaded from " + cpuBackendDir + " " + LlamaLogLastErrors();
    return false;
  }
  g_libraries = libraries;
  g_loaded = true;
  return true;
}

bool LlamaApiLoaded() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_loaded;
}

const std::vector<std::string>& LlamaApiLibraries() { return g_libraries; }

bool LlamaApiLoadBackend(const std::string& path, std::string& regName, std::string& err) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_loaded) {
    err = "llama.cpp libraries are not loaded";
    return false;
  }
  auto it = g_backends.find(path);
  if (it != g_backends.end()) {
    regName = it->second;
    return true;
  }
  // Open it ourselves first: the loader's message says what is missing (ggml only logs it).
  if (!OpenLibrary(path, err)) return false;  // kept open; ggml_backend_load opens it again
  LlamaLogClear();
  ggml_backend_reg_t reg = L.ggml_backend_load(path.c_str());
  if (!reg) {
    err = "ggml could not register the backend in " + path + ": " + LlamaLogLastErrors();
    return false;
  }
  regName = L.ggml_backend_reg_name(reg);
  g_backends[path] = regName;
  return true;
}

void LlamaLogClear() {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_log_lines.clear();
  g_log_partial.clear();
}

std::string LlamaLogLastErrors() {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::string out;
  for (const auto& l : g_log_lines) {
    if (!out.empty()) out += "; ";
    out += l;
  }
  return out;
}

std::string LlamaTokenPiece(const llama_vocab* vocab, llama_token token, bool special) {
  char small[128];
  int32_t n = L.llama_token_to_piece(vocab, token, small, sizeof(small), 0, special);
  if (n >= 0) return std::string(small, n);
  std::vector<char> buf(-n);
  n = L.llama_token_to_piece(vocab, token, buf.data(), buf.size(), 0, special);
  return n > 0 ? std::string(buf.data(), n) : std::string();
}
