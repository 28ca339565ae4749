#include <vector>

#include "core/math/interpolate.h"
#include "core/math/philox.h"
#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

void CpuBackend::interpolate(float* x_t, float* target, const float* x0, const float* t, int B, int D, uint64_t seed,
                             uint64_t offset) {
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      for (int d = 0; d < D; ++d) {
        const size_t i = static_cast<size_t>(b) * D + d;
        const Interpolated r = dnft::interpolate(x0[i], philox_normal(seed, kStreamNoise, offset + i), t[b]);
        x_t[i] = r.x_t;
        target[i] = r.target;
      }
    }
  });
}

double CpuBackend::mse_loss(float* dpred, const float* pred, const float* target, size_t n, float scale) {
  const int threads = global_pool().size();
  std::vector<double> partial(static_cast<size_t>(threads), 0.0);
  const float grad_factor = 2.0f * scale / static_cast<float>(n);
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int worker) {
        double sum = 0.0;
        for (int64_t i = begin; i < end; ++i) {
          const float diff = pred[i] - target[i];
          sum += static_cast<double>(diff) * diff;
          dpred[i] = grad_factor * diff;
        }
        partial[worker] += sum;
      },
      16384);
  double total = 0.0;
  for (double p : partial) total += p;
  return total / static_cast<double>(n);
}

}  // namespace dnft::cpu
