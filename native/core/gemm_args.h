// The arguments of a single-precision GEMM, shared by the CPU GEMM (cpu/gemm.cpp) and the CUDA one (cuda/gemm.cu).
// Row-major, BLAS semantics:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C + (bias ? bias[n] broadcast over rows : 0)
// op(A) = A (M x K, leading dimension lda) or A^T when transA (A stored K x M); likewise op(B) = B (K x N) or B^T
// when transB (B stored N x K). beta == 0 never reads C (it may hold NaN); alpha == 0 or K == 0 never reads A or B.
#pragma once

namespace dnft {

struct GemmArgs {
  bool transA, transB;
  int M, N, K;
  float alpha;
  const float* A;
  int lda;
  const float* B;
  int ldb;
  float beta;
  float* C;
  int ldc;
  const float* bias;  // (N) or null
};

}  // namespace dnft
