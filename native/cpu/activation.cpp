#include "core/math/activation.h"

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

namespace {
constexpr int64_t kElementGrain = 16384;
}

void silu_forward(float* out, const float* in, size_t n) {
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) out[i] = silu(in[i]);
      },
      kElementGrain);
}

void silu_backward(float* din, const float* dout, const float* in, size_t n) {
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) din[i] = dout[i] * silu_grad(in[i]);
      },
      kElementGrain);
}

}  // namespace dnft::cpu
