#include "core/math/lincomb.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

namespace {
constexpr int64_t kElementGrain = 16384;
}

void add_inplace(float* y, const float* x, size_t n) {
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) y[i] += x[i];
      },
      kElementGrain);
}

void lincomb(float* out, size_t n, float a, const float* x, float b, const float* y, float c, const float* z) {
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int) {
        if (z == nullptr) {
          for (int64_t i = begin; i < end; ++i) out[i] = lincomb2(a, x[i], b, y[i]);
        } else {
          for (int64_t i = begin; i < end; ++i) out[i] = lincomb3(a, x[i], b, y[i], c, z[i]);
        }
      },
      kElementGrain);
}

}  // namespace dnft::cpu
