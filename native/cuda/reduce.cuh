// Deterministic reductions: a fixed-order tree over one block in shared memory (no atomics), for any value type and
// combining operation. Row kernels (attention, adaLN, losses, log-probabilities) run one block per row, of kRowThreads
// or of a size fitted to the row (row_threads); flat sums (MSE, Σx²) write one partial per block that the host adds in
// block order, so results never depend on timing.
#pragma once

#include <type_traits>

#include "cuda/context.cuh"
#include "cuda/kernel.cuh"
#include "cuda/launch.h"

namespace dnft::cuda {

struct Add {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};

// The combination of every thread's value; all threads of the block get the result. blockDim.x must be kThreads.
template <int kThreads, typename T, typename Op>
__device__ T block_reduce(T value, Op op) {
  DNFT_SHARED(unsigned char, raw, sizeof(T) * kThreads, 16);
  T* buf = reinterpret_cast<T*>(raw);
  buf[threadIdx.x] = value;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) buf[threadIdx.x] = op(buf[threadIdx.x], buf[threadIdx.x + s]);
    __syncthreads();
  }
  const T result = buf[0];
  __syncthreads();  // the buffer is reused by the next reduction
  return result;
}

// Σ over one row of a row kernel of kThreads threads, in double.
template <int kThreads = kRowThreads>
__device__ double row_sum(double value) {
  return block_reduce<kThreads>(value, Add{});
}

template <typename F>
__global__ void __launch_bounds__(kReduceThreads) block_partials_kernel(size_t n, F term, double* partial) {
  const size_t step = static_cast<size_t>(gridDim.x) * blockDim.x;
  double acc = 0.0;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) acc += term(i);
  const double total = block_reduce<kReduceThreads>(acc, Add{});
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// Σ_i term(i) over [0, n) in double; term may also write outputs (the gradient of a loss).
template <typename F>
double reduce_sum(const Context& ctx, size_t n, F term, const char* what) {
  if (n == 0) return 0.0;
  const Geometry g = reduction_geometry(n);
  auto* partial = static_cast<double*>(ctx.scratch->get(g.blocks * sizeof(double)));
  launch(what, block_partials_kernel<F>, g.blocks, g.threads, 0, ctx.stream, n, term, partial);
  double total = 0.0;
  for (double p : download(ctx, partial, g.blocks)) total += p;
  return total;
}

// Launches a row kernel: one block of kThreads per row.
template <int kThreads = kRowThreads, typename... Params, typename... Args>
void launch_rows(const Context& ctx, int rows, void (*kernel)(Params...), const char* what, Args... args) {
  if (rows <= 0) return;
  launch(what, kernel, static_cast<unsigned>(rows), kThreads, 0, ctx.stream, args...);
}

// Calls body(std::integral_constant<int, n>{}) with the block n = row_threads(work, per_thread), for a row kernel
// templated on its block size.
template <typename F>
void with_row_threads(int work, int per_thread, F&& body) {
  static_assert(kMinRowThreads == 32 && kRowThreads == 256, "the sizes below are the powers of two between them");
  switch (row_threads(work, per_thread)) {
    case 32:
      return body(std::integral_constant<int, 32>{});
    case 64:
      return body(std::integral_constant<int, 64>{});
    case 128:
      return body(std::integral_constant<int, 128>{});
    default:
      return body(std::integral_constant<int, 256>{});
  }
}

}  // namespace dnft::cuda
