// Single-precision GEMM for the CPU backend: packed, cache-blocked, threaded over global_pool().
#pragma once

namespace dnft::cpu {

// Row-major, BLAS semantics:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C + (bias ? bias[n] broadcast over rows : 0)
// op(A) = A (M x K, leading dimension lda) or A^T when transA (A stored K x M); likewise op(B) = B (K x N) or B^T
// when transB (B stored N x K). beta == 0 never reads C (it may hold NaN); alpha == 0 or K == 0 never reads A or B.
void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
           float beta, float* C, int ldc, const float* bias = nullptr);

// Name of the micro-kernel picked at first use ("avx2-fma-6x16" or "generic-6x16"), for logs and tests. The
// environment variable DNFT_CPU_KERNELS=generic forces the portable one (cpu/simd.h).
const char* sgemm_kernel_name();

}  // namespace dnft::cpu
