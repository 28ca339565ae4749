#include "core/math/lincomb.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/elementwise.cuh"

namespace dnft::cuda {

void CudaBackend::fill(float* dst, float value, size_t n) {
  for_each_index(
      ctx_, n, [=] __device__(size_t i) { dst[i] = value; }, "fill");
}

void CudaBackend::add_inplace(float* y, const float* x, size_t n) {
  for_each_index(
      ctx_, n, [=] __device__(size_t i) { y[i] += x[i]; }, "add_inplace");
}

void CudaBackend::lincomb(float* out, size_t n, float a, const float* x, float b, const float* y, float c,
                          const float* z) {
  if (z == nullptr) {
    for_each_index(
        ctx_, n, [=] __device__(size_t i) { out[i] = lincomb2(a, x[i], b, y[i]); }, "lincomb");
  } else {
    for_each_index(
        ctx_, n, [=] __device__(size_t i) { out[i] = lincomb3(a, x[i], b, y[i], c, z[i]); }, "lincomb");
  }
}

}  // namespace dnft::cuda
