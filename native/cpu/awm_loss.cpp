#include "core/math/awm_loss.h"

#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

double CpuBackend::awm_loss(float* dv_theta, const float* v_theta, const float* v_ref, const float* v_ema,
                            const float* target, const float* t, const float* advantages, int B, int D,
                            const AwmLossParams& p, float scale, AwmStats* stats) {
  std::vector<AwmRowTerms> rows(B);
  const bool kl = p.kl_coef != 0.0f && v_ref != nullptr, ema = p.ema_coef != 0.0f && v_ema != nullptr;
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const size_t row = static_cast<size_t>(b) * D;
      AwmRowSums sums;
      for (int d = 0; d < D; ++d) {
        awm_accumulate(&sums, v_theta[row + d], target[row + d], kl ? v_ref[row + d] : 0.0f,
                       ema ? v_ema[row + d] : 0.0f);
      }
      const AwmRowTerms terms = awm_row_terms(sums, t[b], advantages[b], p, kl, ema, D, B, scale);
      rows[b] = terms;
      for (int d = 0; d < D; ++d) {
        dv_theta[row + d] =
            awm_grad(terms, v_theta[row + d], target[row + d], kl ? v_ref[row + d] : 0.0f, ema ? v_ema[row + d] : 0.0f);
      }
    }
  });
  return sum_awm_rows(rows.data(), B, stats);
}

}  // namespace dnft::cpu
