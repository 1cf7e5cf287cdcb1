{
  "targets": [
    {
      "target_name": "safety_lens",
      "sources": [
        "native/addon.cpp",
        "native/LlamaApi.cpp",
        "native/AddonBackend.cpp",
        "native/AddonModel.cpp",
        "native/ModelLoadWorker.cpp",
        "native/AddonContext.cpp",
        "native/ContextInitWorker.cpp",
        "native/ContextJob.cpp",
        "native/CapturePlan.cpp",
        "native/BatchDecodeWorker.cpp",
        "native/StreamingMonitor.cpp",
        "native/GenerateWorker.cpp",
        "native/GraphProbeWorker.cpp",
        "native/QuantizeWorker.cpp",
        "native/AddonMath.cpp",
        "native/AddonMemory.cpp"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "llama-headers/include",
        "llama-headers/ggml/include"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "MACOSX_DEPLOYMENT_TARGET": "11.0"
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] }
      },
      "conditions": [
        ["OS=='linux'", { "libraries": ["-ldl"] }]
      ]
    }
  ]
}
