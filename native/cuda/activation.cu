#include "core/math/activation.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/elementwise.cuh"

namespace dnft::cuda {

void CudaBackend::silu_forward(float* out, const float* in, size_t n) {
  for_each_index(
      ctx_, n, [=] __device__(size_t i) { out[i] = silu(in[i]); }, "silu_forward");
}

void CudaBackend::silu_backward(float* din, const float* dout, const float* in, size_t n) {
  for_each_index(
      ctx_, n, [=] __device__(size_t i) { din[i] = dout[i] * silu_grad(in[i]); }, "silu_backward");
}

void CudaBackend::gelu_forward(float* out, const float* in, size_t n) {
  for_each_index(
      ctx_, n, [=] __device__(size_t i) { out[i] = gelu(in[i]); }, "gelu_forward");
}

void CudaBackend::gelu_backward(float* din, const float* dout, const float* in, size_t n) {
  for_each_index(
      ctx_, n, [=] __device__(size_t i) { din[i] = dout[i] * gelu_grad(in[i]); }, "gelu_backward");
}

}  // namespace dnft::cuda
