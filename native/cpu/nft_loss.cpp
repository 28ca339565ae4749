#include "core/math/nft_loss.h"

#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

double CpuBackend::nft_loss(float* dv_theta, const float* v_theta, const float* v_old, const float* v_ref,
                            const float* target, const float* t, const float* r, int B, int D, const NftLossParams& p,
                            float scale) {
  std::vector<double> row_loss(B);
  const bool kl = p.kl_coef != 0.0f && v_ref != nullptr;
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const size_t row = static_cast<size_t>(b) * D;
      // Pass 1: the row's sums in double.
      NftRowSums sums;
      for (int d = 0; d < D; ++d) {
        const NftResiduals res = nft_residuals(v_theta[row + d], v_old[row + d], target[row + d], p.beta);
        nft_accumulate(&sums, res, kl, v_theta[row + d], kl ? v_ref[row + d] : 0.0f);
      }
      const NftRowTerms terms = nft_row_terms(sums, t[b], r[b], p, kl, D, B, scale);
      row_loss[b] = terms.loss;
      // Pass 2: the gradient.
      for (int d = 0; d < D; ++d) {
        const NftResiduals res = nft_residuals(v_theta[row + d], v_old[row + d], target[row + d], p.beta);
        dv_theta[row + d] =
            nft_grad(res, terms.g_pos, terms.g_neg, terms.kl_grad, v_theta[row + d], kl ? v_ref[row + d] : 0.0f);
      }
    }
  });
  double loss = 0;
  for (double value : row_loss) loss += value;
  return loss * (1.0 / B);
}

}  // namespace dnft::cpu
