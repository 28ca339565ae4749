// Patchify and unpatchify (core/math/patchify.h): two gathers through one index map, each the other's backward.
#include "core/math/patchify.h"

#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

void CpuBackend::patchify(float* tokens, const float* images, int B, int S, int C, int p) {
  const int T = (S / p) * (S / p), P = p * p * C, D = S * S * C;
  global_pool().parallel_for(static_cast<int64_t>(B) * T, [&](int64_t begin, int64_t end, int) {
    for (int64_t row = begin; row < end; ++row) {
      const float* image = images + row / T * D;
      for (int j = 0; j < P; ++j) tokens[row * P + j] = image[patch_pixel_index(static_cast<int>(row % T), j, S, C, p)];
    }
  });
}

void CpuBackend::unpatchify(float* images, const float* tokens, int B, int S, int C, int p) {
  const int T = (S / p) * (S / p), P = p * p * C, D = S * S * C;
  global_pool().parallel_for(static_cast<int64_t>(B) * T, [&](int64_t begin, int64_t end, int) {
    for (int64_t row = begin; row < end; ++row) {
      float* image = images + row / T * D;
      for (int j = 0; j < P; ++j) image[patch_pixel_index(static_cast<int>(row % T), j, S, C, p)] = tokens[row * P + j];
    }
  });
}

}  // namespace dnft::cpu
