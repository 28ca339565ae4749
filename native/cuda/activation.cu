#include "core/math/activation.h"
#include "cuda/elementwise.cuh"
#include "cuda/ops.cuh"

namespace dnft::cuda {

void silu_forward(const Context& ctx, float* out, const float* in, size_t n) {
  for_each_index(
      ctx, n, [=] __device__(size_t i) { out[i] = silu(in[i]); }, "silu_forward");
}

void silu_backward(const Context& ctx, float* din, const float* dout, const float* in, size_t n) {
  for_each_index(
      ctx, n, [=] __device__(size_t i) { din[i] = dout[i] * silu_grad(in[i]); }, "silu_backward");
}

void gelu_forward(const Context& ctx, float* out, const float* in, size_t n) {
  for_each_index(
      ctx, n, [=] __device__(size_t i) { out[i] = gelu(in[i]); }, "gelu_forward");
}

void gelu_backward(const Context& ctx, float* din, const float* dout, const float* in, size_t n) {
  for_each_index(
      ctx, n, [=] __device__(size_t i) { din[i] = dout[i] * gelu_grad(in[i]); }, "gelu_backward");
}

}  // namespace dnft::cuda
