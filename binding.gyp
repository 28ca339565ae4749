{
  "targets": [
    {
      "target_name": "diffusion_nft",
      "sources": [
        "native/addon/addon.cpp",
        "native/addon/convert.cpp",
        "native/addon/model_wrap.cpp",
        "native/addon/promise_worker.cpp",
        "native/core/backend.cpp",
        "native/core/device_none.cpp",
        "native/core/device_select.cpp",
        "native/core/dit.cpp",
        "native/core/embedding_net.cpp",
        "native/core/guidance.cpp",
        "native/core/lora.cpp",
        "native/core/mlp.cpp",
        "native/core/model.cpp",
        "native/core/model_grpo.cpp",
        "native/core/model_nft.cpp",
        "native/core/net_config.cpp",
        "native/core/network.cpp",
        "native/core/optimizer.cpp",
        "native/core/sampler.cpp",
        "native/cpu/activation.cpp",
        "native/cpu/adaln.cpp",
        "native/cpu/attention.cpp",
        "native/cpu/cpu_backend.cpp",
        "native/cpu/elementwise.cpp",
        "native/cpu/embedding.cpp",
        "native/cpu/flow_matching.cpp",
        "native/cpu/gemm.cpp",
        "native/cpu/linear.cpp",
        "native/cpu/nft_loss.cpp",
        "native/cpu/optimizer.cpp",
        "native/cpu/patchify.cpp",
        "native/cpu/random.cpp",
        "native/cpu/sde.cpp",
        "native/cpu/thread_pool.cpp"
      ],
      "include_dirs": ["native"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-Werror", "-fexceptions"],
      "ldflags": ["-pthread"]
    }
  ]
}
