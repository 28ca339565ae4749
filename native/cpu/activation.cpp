#include "core/math/activation.h"

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

void silu_forward(float* out, const float* in, size_t n) {
  parallel_elements(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = silu(in[i]);
  });
}

void silu_backward(float* din, const float* dout, const float* in, size_t n) {
  parallel_elements(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) din[i] = dout[i] * silu_grad(in[i]);
  });
}

void gelu_forward(float* out, const float* in, size_t n) {
  parallel_elements(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = gelu(in[i]);
  });
}

void gelu_backward(float* din, const float* dout, const float* in, size_t n) {
  parallel_elements(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) din[i] = dout[i] * gelu_grad(in[i]);
  });
}

}  // namespace dnft::cpu
