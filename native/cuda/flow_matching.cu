#include "core/math/interpolate.h"
#include "core/math/philox.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/reduce.cuh"

namespace dnft::cuda {

void CudaBackend::interpolate(float* x_t, float* target, const float* x0, const float* t, int B, int D, uint64_t seed,
                              uint64_t offset) {
  for_each_index(
      ctx_, static_cast<size_t>(B) * D,
      [=] __device__(size_t i) {
        const Interpolated r = dnft::interpolate(x0[i], philox_normal(seed, kStreamNoise, offset + i), t[i / D]);
        x_t[i] = r.x_t;
        target[i] = r.target;
      },
      "interpolate");
}

double CudaBackend::mse_loss(float* dpred, const float* pred, const float* target, size_t n, float scale) {
  const float grad_factor = 2.0f * scale / static_cast<float>(n);
  const double sum = reduce_sum(
      ctx_, n,
      [=] __device__(size_t i) {
        const float diff = pred[i] - target[i];
        dpred[i] = grad_factor * diff;
        return static_cast<double>(diff) * diff;
      },
      "mse_loss");
  return sum / static_cast<double>(n);
}

}  // namespace dnft::cuda
