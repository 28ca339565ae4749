// Our own GEMM (no cuBLAS): 64 × 64 tiles of C staged through shared memory with zero padding at the matrix edges
// (cuda/gemm_tiling.h). TF32 tensor cores via WMMA with FP32 accumulation, or FP32 SIMT for the exact mode and GPUs
// before sm_80. No split-K and no atomics: every element of C is summed in a fixed order, so results are
// reproducible.
#include <mma.h>

#include <string>

#include "cuda/gemm.cuh"
#include "cuda/kernel.cuh"

namespace dnft::cuda {

namespace {

__global__ void __launch_bounds__(kWmmaThreads) gemm_tf32_wmma(GemmArgs g) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  DNFT_SHARED(float, As, (kTileM * kLdA), 32);
  DNFT_SHARED(float, Bs, (kTileK * kLdB), 32);
  DNFT_SHARED(float, Cs, (kTileM * kLdC), 32);
  const int m0 = static_cast<int>(blockIdx.x) * kTileM, n0 = static_cast<int>(blockIdx.y) * kTileN;
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32;
  const int wm = (warp / 2) * kWarpTile, wn = (warp % 2) * kWarpTile;

  wmma::fragment<wmma::accumulator, kWmmaM, kWmmaN, kWmmaK, float> acc[2][2];
  for (auto& row : acc) {
    for (auto& frag : row) wmma::fill_fragment(frag, 0.0f);
  }
  for (int k0 = 0; k0 < g.K; k0 += kTileK) {
    load_tile(As, kLdA, g.A, g.lda, g.transA, m0, k0, g.M, g.K, kTileM, kTileK, tid, kWmmaThreads);
    load_tile(Bs, kLdB, g.B, g.ldb, g.transB, k0, n0, g.K, g.N, kTileK, kTileN, tid, kWmmaThreads);
    __syncthreads();
    for (int kk = 0; kk < kTileK; kk += kWmmaK) {
      wmma::fragment<wmma::matrix_a, kWmmaM, kWmmaN, kWmmaK, wmma::precision::tf32, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, kWmmaM, kWmmaN, kWmmaK, wmma::precision::tf32, wmma::row_major> b[2];
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(a[i], As + (wm + i * kWmmaM) * kLdA + kk, kLdA);
        for (int e = 0; e < a[i].num_elements; ++e) a[i].x[e] = wmma::__float_to_tf32(a[i].x[e]);
        wmma::load_matrix_sync(b[i], Bs + kk * kLdB + wn + i * kWmmaN, kLdB);
        for (int e = 0; e < b[i].num_elements; ++e) b[i].x[e] = wmma::__float_to_tf32(b[i].x[e]);
      }
      for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
      }
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(Cs + (wm + i * kWmmaM) * kLdC + wn + j * kWmmaN, acc[i][j], kLdC, wmma::mem_row_major);
    }
  }
  __syncthreads();
  store_tile(g, Cs, m0, n0, tid, kWmmaThreads);
#else
  // Not reached: the host picks the SIMT kernel below sm_80 (choose_gemm_kernel).
  __trap();
#endif
}

__global__ void __launch_bounds__(kSimtThreads) gemm_fp32_simt(GemmArgs g) {
  DNFT_SHARED(float, As, (kTileM * kLdA), alignof(float));
  DNFT_SHARED(float, Bs, (kTileK * kLdB), alignof(float));
  const int m0 = static_cast<int>(blockIdx.x) * kTileM, n0 = static_cast<int>(blockIdx.y) * kTileN;
  const int tid = static_cast<int>(threadIdx.x), tx = tid % kSimtGrid, ty = tid / kSimtGrid;
  float acc[kSimtPerThread][kSimtPerThread] = {};
  for (int k0 = 0; k0 < g.K; k0 += kTileK) {
    load_tile(As, kLdA, g.A, g.lda, g.transA, m0, k0, g.M, g.K, kTileM, kTileK, tid, kSimtThreads);
    load_tile(Bs, kLdB, g.B, g.ldb, g.transB, k0, n0, g.K, g.N, kTileK, kTileN, tid, kSimtThreads);
    __syncthreads();
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[kSimtPerThread], b[kSimtPerThread];
      for (int i = 0; i < kSimtPerThread; ++i) {
        a[i] = As[(ty + i * kSimtGrid) * kLdA + kk];
        b[i] = Bs[kk * kLdB + tx + i * kSimtGrid];
      }
      for (int i = 0; i < kSimtPerThread; ++i) {
        for (int j = 0; j < kSimtPerThread; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
    }
    __syncthreads();
  }
  for (int i = 0; i < kSimtPerThread; ++i) {
    for (int j = 0; j < kSimtPerThread; ++j) {
      const int m = m0 + ty + i * kSimtGrid, n = n0 + tx + j * kSimtGrid;
      if (m < g.M && n < g.N) gemm_store(g, m, n, acc[i][j]);
    }
  }
}

}  // namespace

void sgemm(const Context& ctx, const GemmArgs& args) {
  if (args.M <= 0 || args.N <= 0) return;
  const GemmGrid grid = gemm_grid(args.M, args.N);
  if (grid.tiles_n > kMaxGemmTilesN) {
    throw Error(Error::Kind::kRange, "GEMM with N = " + std::to_string(args.N) + " columns exceeds the CUDA grid");
  }
  const dim3 blocks(grid.tiles_m, grid.tiles_n);
  if (ctx.gemm == GemmKernel::kTf32Wmma) {
    launch("gemm_tf32_wmma", gemm_tf32_wmma, blocks, kWmmaThreads, 0, ctx.stream, args);
  } else {
    launch("gemm_fp32_simt", gemm_fp32_simt, blocks, kSimtThreads, 0, ctx.stream, args);
  }
}

}  // namespace dnft::cuda
