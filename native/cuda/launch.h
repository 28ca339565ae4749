// Launch geometry of the CUDA kernels, as plain functions of the problem size: compiled by nvcc for the backend and
// by the host compiler for the unit tests (tests/test_cuda_launch.cpp), so the arithmetic is checked on any machine.
// The geometry depends on the sizes only (never on the device), which keeps the block-partial reductions, and so
// the returned sums, identical from one GPU to another.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/common.h"

namespace dnft::cuda {

constexpr int kElementwiseThreads = 256;
constexpr unsigned kMaxElementwiseBlocks = 65536;  // grid-stride loops cover the rest
constexpr int kReduceThreads = 256;
constexpr unsigned kMaxReduceBlocks = 1024;
constexpr int kReduceItemsPerThread = 4;
constexpr int kRowThreads = 256;    // the largest block of a row kernel (one block per row, tree reductions)
constexpr int kMinRowThreads = 32;  // the smallest: one warp

static_assert((kReduceThreads & (kReduceThreads - 1)) == 0, "tree reductions need a power-of-two block");
static_assert((kRowThreads & (kRowThreads - 1)) == 0, "tree reductions need a power-of-two block");
static_assert((kMinRowThreads & (kMinRowThreads - 1)) == 0, "tree reductions need a power-of-two block");

struct Geometry {
  unsigned blocks;
  int threads;
};

DNFT_HD unsigned ceil_div(size_t n, size_t d) { return static_cast<unsigned>((n + d - 1) / d); }

// A grid-stride loop over n elements (n > 0).
DNFT_HD Geometry elementwise_geometry(size_t n) {
  const size_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
  return {blocks < kMaxElementwiseBlocks ? static_cast<unsigned>(blocks) : kMaxElementwiseBlocks, kElementwiseThreads};
}

// A flat sum of n terms as one partial per block (n > 0): at least kReduceItemsPerThread terms per thread.
DNFT_HD Geometry reduction_geometry(size_t n) {
  const size_t per_block = static_cast<size_t>(kReduceThreads) * kReduceItemsPerThread;
  const size_t blocks = (n + per_block - 1) / per_block;
  return {blocks < kMaxReduceBlocks ? static_cast<unsigned>(blocks) : kMaxReduceBlocks, kReduceThreads};
}

// The block of a row kernel whose rows hold `work` items, `per_thread` of them a thread: the smallest power of two
// from kMinRowThreads to kRowThreads that covers the row. A short row (64 tokens, a 192-wide norm) then does not
// leave most of a 256-thread block idle at every barrier of its reductions; longer rows loop over the block.
DNFT_HD int row_threads(int work, int per_thread) {
  const int needed = (work + per_thread - 1) / per_thread;
  int threads = kMinRowThreads;
  while (threads < needed && threads < kRowThreads) threads *= 2;
  return threads;
}

// The elements a thread visits in a grid-stride loop: first, first + stride, ...
DNFT_HD size_t grid_stride_first(unsigned block, int threads, int thread) {
  return static_cast<size_t>(block) * threads + thread;
}
DNFT_HD size_t grid_stride_step(Geometry g) { return static_cast<size_t>(g.blocks) * g.threads; }

}  // namespace dnft::cuda
