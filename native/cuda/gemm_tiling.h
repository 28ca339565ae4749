// The tiling of the CUDA GEMM (cuda/gemm.cu): tile sizes, shared-memory layout, the index math of the tile loads and
// of the epilogue. Plain host/device functions, so the host unit tests run the same index math on the CPU
// (tests/test_cuda_launch.cpp replays the whole tiled product against the CPU GEMM).
#pragma once

#include <cstddef>

#include "core/common.h"
#include "core/device.h"
#include "core/gemm_args.h"
#include "cuda/launch.h"

namespace dnft::cuda {

// A block computes a kTileM × kTileN tile of C, stepping through K by kTileK.
constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
// Shared-memory leading dimensions, padded by 4 floats: a multiple of 4 floats (16 bytes) as WMMA requires, and
// every fragment origin (rows multiple of 16, columns multiple of 8) at a 32-byte boundary.
constexpr int kLdA = kTileK + 4;  // A tile (kTileM × kTileK)
constexpr int kLdB = kTileN + 4;  // B tile (kTileK × kTileN)
constexpr int kLdC = kTileN + 4;  // C staging tile (kTileM × kTileN)
// TF32 WMMA: m16n16k8 fragments, 4 warps in a 2 × 2 grid, each warp a 32 × 32 sub-tile (2 × 2 fragments).
constexpr int kWmmaM = 16, kWmmaN = 16, kWmmaK = 8, kWarpTile = 32, kWmmaThreads = 128;
// FP32 SIMT: 256 threads in a 16 × 16 grid, each 4 × 4 outputs strided by 16.
constexpr int kSimtThreads = 256, kSimtGrid = 16, kSimtPerThread = 4;

static_assert(kLdA % 4 == 0 && kLdB % 4 == 0 && kLdC % 4 == 0, "WMMA leading dimensions are multiples of 4 floats");
static_assert((kWmmaM * kLdA * 4) % 32 == 0 && (kWmmaK * kLdB * 4) % 32 == 0 && (kWmmaM * kLdC * 4) % 32 == 0,
              "fragment rows start 32-byte aligned");
static_assert(kTileM == 2 * kWarpTile && kTileN == 2 * kWarpTile && kWmmaThreads == 4 * 32, "2 x 2 warps");
static_assert(kTileK % kWmmaK == 0, "K tile holds whole fragments");
static_assert(kSimtGrid * kSimtPerThread == kTileM && kSimtGrid * kSimtPerThread == kTileN, "SIMT covers the tile");
static_assert(kSimtGrid * kSimtGrid == kSimtThreads, "SIMT thread grid");

enum class GemmKernel { kTf32Wmma, kFp32Simt };

// TF32 tensor cores need sm_80 or newer; older GPUs and the exact mode run the FP32 SIMT kernel.
inline GemmKernel choose_gemm_kernel(Precision precision, int compute_major) {
  return precision == Precision::kTf32 && compute_major >= 8 ? GemmKernel::kTf32Wmma : GemmKernel::kFp32Simt;
}

// Tiles of C: x over the M tiles (up to 2^31 − 1), y over the N tiles (up to 65535).
struct GemmGrid {
  unsigned tiles_m, tiles_n;
};
DNFT_HD GemmGrid gemm_grid(int M, int N) { return {ceil_div(M, kTileM), ceil_div(N, kTileN)}; }
constexpr unsigned kMaxGemmTilesN = 65535;

// Offset of op(X)[r][c] in a row-major X with leading dimension ld, op(X) = X or X^T when trans.
DNFT_HD size_t op_offset(int r, int c, int ld, bool trans) {
  return trans ? static_cast<size_t>(c) * ld + r : static_cast<size_t>(r) * ld + c;
}

// Element e of a rows × cols tile load → (row, col). The fast index follows memory: along the columns when op(X)
// is X (a row of X is contiguous), along the rows when op(X) = X^T, so consecutive threads read consecutive floats.
struct TileCoord {
  int row, col;
};
DNFT_HD TileCoord tile_coord(int e, int rows, int cols, bool trans) {
  return trans ? TileCoord{e % rows, e / rows} : TileCoord{e / cols, e % cols};
}

// Loads the rows × cols tile of op(X) at (row0, col0) into tile[row·ld + col], zero outside the total_rows ×
// total_cols matrix (the zero padding makes ragged edges exact: no tail kernel). Thread `first` of `stride` threads.
DNFT_HD void load_tile(float* tile, int ld, const float* X, int ldx, bool trans, int row0, int col0, int total_rows,
                       int total_cols, int rows, int cols, int first, int stride) {
  for (int e = first; e < rows * cols; e += stride) {
    const TileCoord c = tile_coord(e, rows, cols, trans);
    const int r = row0 + c.row, k = col0 + c.col;
    tile[c.row * ld + c.col] = r < total_rows && k < total_cols ? X[op_offset(r, k, ldx, trans)] : 0.0f;
  }
}

// The epilogue of one element of C (inside the matrix): alpha·acc + beta·C + bias.
DNFT_HD void gemm_store(const GemmArgs& g, int m, int n, float acc) {
  float value = g.alpha * acc;
  if (g.beta != 0.0f) value += g.beta * g.C[static_cast<size_t>(m) * g.ldc + n];
  if (g.bias != nullptr) value += g.bias[n];
  g.C[static_cast<size_t>(m) * g.ldc + n] = value;
}

// Writes a staged kTileM × kTileN tile (ld kLdC) of products at (m0, n0), skipping what lies outside C.
DNFT_HD void store_tile(const GemmArgs& g, const float* tile, int m0, int n0, int first, int stride) {
  for (int e = first; e < kTileM * kTileN; e += stride) {
    const int r = e / kTileN, c = e % kTileN;
    if (m0 + r < g.M && n0 + c < g.N) gemm_store(g, m0 + r, n0 + c, tile[r * kLdC + c]);
  }
}

}  // namespace dnft::cuda
