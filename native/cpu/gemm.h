// Single-precision GEMM for the CPU backend: packed, cache-blocked, threaded over global_pool().
#pragma once

#include "core/gemm_args.h"

namespace dnft::cpu {

// The product of core/gemm_args.h, its fields as arguments in order.
void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
           float beta, float* C, int ldc, const float* bias = nullptr);

// Name of the micro-kernel picked at first use ("avx512-14x32", "avx2-fma-6x16" or "generic-6x16"), for logs and
// tests: the one of the path cpu_kernels() (cpu/simd.h) names.
const char* sgemm_kernel_name();

}  // namespace dnft::cpu
