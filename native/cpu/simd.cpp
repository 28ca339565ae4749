// Run-time choice of the CPU kernel path (cpu/simd.h). A CPU flag alone is not enough: the OS must also enable the
// register state (XCR0, read by XGETBV), or the first AVX instruction faults; a hypervisor may mask AVX-512 so.
#include "cpu/simd.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace dnft::cpu {

namespace {

#if defined(__x86_64__)
// XCR0 bits the OS sets when it saves a register file on context switches: SSE and AVX (the ymm upper halves), and
// for AVX-512 the opmask registers, the zmm upper halves and zmm16-31.
constexpr unsigned kXcr0Avx = (1u << 1) | (1u << 2);
constexpr unsigned kXcr0Avx512 = kXcr0Avx | (1u << 5) | (1u << 6) | (1u << 7);

unsigned read_xcr0() {
  unsigned eax = 0, edx = 0;
  __asm__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return eax;
}

CpuKernels detect() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return CpuKernels::kGeneric;
  const bool fma = (ecx & bit_FMA) != 0, osxsave = (ecx & bit_OSXSAVE) != 0, avx = (ecx & bit_AVX) != 0;
  if (!osxsave || !avx || !fma) return CpuKernels::kGeneric;
  const unsigned xcr0 = read_xcr0();
  if ((xcr0 & kXcr0Avx) != kXcr0Avx) return CpuKernels::kGeneric;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || (ebx & bit_AVX2) == 0) return CpuKernels::kGeneric;
  if ((ebx & bit_AVX512F) != 0 && (xcr0 & kXcr0Avx512) == kXcr0Avx512) return CpuKernels::kAvx512;
  return CpuKernels::kAvx2;
}
#else
CpuKernels detect() { return CpuKernels::kGeneric; }
#endif

CpuKernels widest_supported() {
  static const CpuKernels widest = detect();
  return widest;
}

CpuKernels choose() {
  const CpuKernels widest = widest_supported();
  const char* forced = std::getenv("DNFT_CPU_KERNELS");
  if (forced == nullptr || *forced == '\0') return widest;
  CpuKernels asked;
  if (!parse_cpu_kernels(forced, &asked)) {
    std::fprintf(stderr, "diffusion-nft: DNFT_CPU_KERNELS=%s is none of generic, avx2, avx512; using %s\n", forced,
                 cpu_kernels_name(widest));
    return widest;
  }
  if (asked > widest) {
    std::fprintf(stderr, "diffusion-nft: DNFT_CPU_KERNELS=%s needs instructions this CPU or its OS lacks; using %s\n",
                 forced, cpu_kernels_name(widest));
    return widest;
  }
  return asked;
}

}  // namespace

const char* cpu_kernels_name(CpuKernels kernels) {
  switch (kernels) {
    case CpuKernels::kAvx512:
      return "avx512";
    case CpuKernels::kAvx2:
      return "avx2";
    case CpuKernels::kGeneric:
      break;
  }
  return "generic";
}

bool parse_cpu_kernels(const char* name, CpuKernels* out) {
  for (CpuKernels k : {CpuKernels::kGeneric, CpuKernels::kAvx2, CpuKernels::kAvx512}) {
    if (std::strcmp(name, cpu_kernels_name(k)) == 0) {
      *out = k;
      return true;
    }
  }
  return false;
}

bool cpu_supports(CpuKernels kernels) { return kernels <= widest_supported(); }

CpuKernels cpu_kernels() {
  static const CpuKernels chosen = choose();
  return chosen;
}

}  // namespace dnft::cpu
