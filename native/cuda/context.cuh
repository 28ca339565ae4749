// What every CUDA kernel launcher receives from its backend: the model's stream, the GEMM arithmetic, and scratch
// memory for block partials whose sums come back to the host.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "core/device.h"
#include "cuda/cuda_check.cuh"
#include "cuda/gemm_tiling.h"

namespace dnft::cuda {

// A device allocation that grows on demand and is reused by the kernels of one backend's stream. Growing it first
// waits for that stream, so it never frees memory a queued kernel still reads: attention_backward leaves two kernels
// reading it, and a larger request may follow at once (without the wait, only cudaFree's implicit device
// synchronisation kept that safe; cudasim/tests/test_cudasim.cpp shows it under the simulator's strict free).
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch();
  // The stream whose kernels use the buffer (set once, before the first get).
  void attach(cudaStream_t stream) { stream_ = stream; }
  void* get(size_t bytes);

 private:
  cudaStream_t stream_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct Context {
  cudaStream_t stream;
  GemmKernel gemm;
  Scratch* scratch;
};

// Copies n values from the device to a host vector on the context's stream and waits for them.
template <typename T>
std::vector<T> download(const Context& ctx, const T* device, size_t n) {
  std::vector<T> host(n);
  check(cudaMemcpyAsync(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost, ctx.stream), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(ctx.stream), "cudaStreamSynchronize");
  return host;
}

}  // namespace dnft::cuda
