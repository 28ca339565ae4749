#include "core/math/dgpo_loss.h"

#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

double CpuBackend::dgpo_loss(float* dv_theta, const float* v_theta, const float* v_ref, const float* target,
                             const float* weight, const float* keep, int B, int D, float kl_coef, float scale) {
  std::vector<double> row_loss(B);
  const bool kl = kl_coef != 0.0f && v_ref != nullptr;
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const size_t row = static_cast<size_t>(b) * D;
      DgpoRowSums sums;
      for (int d = 0; d < D; ++d) dgpo_accumulate(&sums, v_theta[row + d], target[row + d], kl ? v_ref[row + d] : 0.0f);
      const DgpoRowTerms terms = dgpo_row_terms(sums, weight[b], keep[b], kl_coef, kl, D, B, scale);
      row_loss[b] = terms.loss;
      for (int d = 0; d < D; ++d) {
        dv_theta[row + d] = dgpo_grad(terms, v_theta[row + d], target[row + d], kl ? v_ref[row + d] : 0.0f);
      }
    }
  });
  double loss = 0;
  for (double value : row_loss) loss += value;
  return loss * (1.0 / B);
}

void CpuBackend::row_mean_sq(double* host_out, const float* a, const float* b, int B, int D) {
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t row = static_cast<size_t>(i) * D;
      double sum = 0;
      for (int d = 0; d < D; ++d) {
        const double diff = static_cast<double>(a[row + d]) - b[row + d];
        sum += diff * diff;
      }
      host_out[i] = sum / D;
    }
  });
}

}  // namespace dnft::cpu
