// Which vector code the CPU backend runs: AVX-512, AVX2 + FMA or the portable loops. The widest the CPU and its OS
// support is picked at first use (cpu/simd.cpp reads CPUID and XGETBV); the environment variable
// DNFT_CPU_KERNELS=generic|avx2|avx512 picks a narrower one (to test each path on one machine). The vector code is
// compiled per function with target attributes, so one binary runs on CPUs of every level.
#pragma once

#if defined(__x86_64__)
// GCC 12's AVX-512 headers trip its own -W(maybe-)uninitialized (_mm512_undefined_ps reads itself; fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

// Compiles one function for AVX2 + FMA in a build that targets baseline x86-64; call it only when avx2_enabled().
#define DNFT_AVX2 __attribute__((target("avx2,fma")))
// Compiles one function for AVX-512 (the foundation set); call it only when avx512_enabled().
#define DNFT_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

namespace dnft::cpu {

// The CPU kernel paths, narrowest first: each one's CPU also runs every narrower one.
enum class CpuKernels { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// "generic", "avx2" or "avx512": the values DNFT_CPU_KERNELS takes.
const char* cpu_kernels_name(CpuKernels kernels);

// Parses a DNFT_CPU_KERNELS value; false for a name that is none of the paths.
bool parse_cpu_kernels(const char* name, CpuKernels* out);

// Whether this CPU, and its OS (which must save the wider registers), can run `kernels`.
bool cpu_supports(CpuKernels kernels);

// The path in use, fixed at first call: DNFT_CPU_KERNELS if it names one the CPU supports, else the widest the CPU
// supports (with a warning on stderr when DNFT_CPU_KERNELS names an unknown or unsupported path).
CpuKernels cpu_kernels();

inline bool avx2_enabled() { return cpu_kernels() >= CpuKernels::kAvx2; }
inline bool avx512_enabled() { return cpu_kernels() == CpuKernels::kAvx512; }

}  // namespace dnft::cpu
