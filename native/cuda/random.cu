// Philox fills: element i is draw (seed, stream, offset + i), the same bits as the CPU (core/math/philox.h).
#include "core/math/philox.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/elementwise.cuh"

namespace dnft::cuda {

void CudaBackend::fill_normal(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float stddev) {
  for_each_index(
      ctx_, n, [=] __device__(size_t i) { dst[i] = stddev * philox_normal(seed, stream, offset + i); }, "fill_normal");
}

void CudaBackend::fill_uniform(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float low,
                               float high) {
  for_each_index(
      ctx_, n, [=] __device__(size_t i) { dst[i] = low + (high - low) * philox_uniform(seed, stream, offset + i); },
      "fill_uniform");
}

}  // namespace dnft::cuda
