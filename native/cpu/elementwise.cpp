#include "core/math/lincomb.h"
#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

void CpuBackend::add_inplace(float* y, const float* x, size_t n) {
  parallel_elements(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] += x[i];
  });
}

void CpuBackend::lincomb(float* out, size_t n, float a, const float* x, float b, const float* y, float c,
                         const float* z) {
  parallel_elements(n, [&](int64_t begin, int64_t end) {
    if (z == nullptr) {
      for (int64_t i = begin; i < end; ++i) out[i] = lincomb2(a, x[i], b, y[i]);
    } else {
      for (int64_t i = begin; i < end; ++i) out[i] = lincomb3(a, x[i], b, y[i], c, z[i]);
    }
  });
}

}  // namespace dnft::cpu
