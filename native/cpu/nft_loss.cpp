#include "core/math/nft_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

double nft_loss(float* dv_theta, const float* v_theta, const float* v_old, const float* v_ref, const float* target,
                const float* t, const float* r, int B, int D, const NftLossParams& p, float scale) {
  std::vector<double> row_loss(B);
  const bool kl = p.kl_coef != 0.0f && v_ref != nullptr;
  const double C = p.adv_clip_max, inv_D = 1.0 / D, inv_B = 1.0 / B;
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const size_t row = static_cast<size_t>(b) * D;
      const double tb = t[b], rb = r[b];
      // Pass 1: the row's sums in double.
      double abs_pos = 0, abs_neg = 0, sq_pos = 0, sq_neg = 0, sq_kl = 0;
      for (int d = 0; d < D; ++d) {
        const NftResiduals res = nft_residuals(v_theta[row + d], v_old[row + d], target[row + d], p.beta);
        abs_pos += std::fabs(res.pos);
        abs_neg += std::fabs(res.neg);
        sq_pos += static_cast<double>(res.pos) * res.pos;
        sq_neg += static_cast<double>(res.neg) * res.neg;
        if (kl) {
          const double diff = static_cast<double>(v_theta[row + d]) - v_ref[row + d];
          sq_kl += diff * diff;
        }
      }
      double a_pos = 1, a_neg = 1;
      if (p.adaptive) {
        a_pos = tb * tb / std::max(tb * abs_pos * inv_D, kNftWeightFloor);
        a_neg = tb * tb / std::max(tb * abs_neg * inv_D, kNftWeightFloor);
      }
      const double w_neg = p.positive_only ? 0.0 : 1.0 - rb;
      row_loss[b] = C / p.beta * (rb * a_pos * sq_pos + w_neg * a_neg * sq_neg) * inv_D + p.kl_coef * sq_kl * inv_D;
      // Pass 2: the gradient.
      const double g = scale * 2.0 * C * inv_D * inv_B;
      const float g_pos = static_cast<float>(g * rb * a_pos), g_neg = static_cast<float>(g * w_neg * a_neg);
      const float kl_grad = kl ? static_cast<float>(scale * 2.0 * p.kl_coef * inv_D * inv_B) : 0.0f;
      for (int d = 0; d < D; ++d) {
        const NftResiduals res = nft_residuals(v_theta[row + d], v_old[row + d], target[row + d], p.beta);
        dv_theta[row + d] = nft_grad(res, g_pos, g_neg, kl_grad, v_theta[row + d], kl ? v_ref[row + d] : 0.0f);
      }
    }
  });
  double loss = 0;
  for (double value : row_loss) loss += value;
  return loss * inv_B;
}

}  // namespace dnft::cpu
