// Which vector code the CPU backend runs: AVX2 + FMA where the CPU has them, the portable loops otherwise or when
// the environment variable DNFT_CPU_KERNELS=generic asks for them (to test the portable path on AVX2 machines).
#pragma once

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>

// Compiles one function for AVX2 + FMA in a build that targets baseline x86-64; call it only when avx2_enabled().
#define DNFT_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace dnft::cpu {

inline bool avx2_enabled() {
  static const bool enabled = [] {
    const char* forced = std::getenv("DNFT_CPU_KERNELS");
    if (forced != nullptr && std::strcmp(forced, "generic") == 0) return false;
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return enabled;
}

}  // namespace dnft::cpu
