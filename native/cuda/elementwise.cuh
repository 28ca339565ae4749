// The generic elementwise launcher: a grid-stride loop calling a device functor for every index in [0, n). Every
// elementwise op (activations, lincomb, fills, Philox draws, interpolation, AdamW) is one call of for_each_index
// with a __device__ lambda over the shared per-element math.
#pragma once

#include "cuda/context.cuh"
#include "cuda/kernel.cuh"
#include "cuda/launch.h"

namespace dnft::cuda {

template <typename F>
__global__ void __launch_bounds__(kElementwiseThreads) for_each_index_kernel(size_t n, F f) {
  const size_t step = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

template <typename F>
void for_each_index(const Context& ctx, size_t n, F f, const char* what) {
  if (n == 0) return;
  const Geometry g = elementwise_geometry(n);
  launch(what, for_each_index_kernel<F>, g.blocks, g.threads, 0, ctx.stream, n, f);
}

}  // namespace dnft::cuda
