#include "core/math/sde.h"

#include <vector>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

namespace {

// The log-probability of one row: per-element float32 terms summed in double, then the mean (or sum) as float,
// the value the rollout stores as log p_old and the training step recomputes.
template <typename MeanAt>
float row_logp(const float* x_next, MeanAt mean_at, float std, int D, bool sum) {
  double acc = 0;
  for (int d = 0; d < D; ++d) acc += gaussian_logp(x_next[d], mean_at(d), std);
  return static_cast<float>(sum ? acc : acc / D);
}

}  // namespace

void sde_logp(float* logp, const float* x_next, const float* mean, float std, int B, int D, bool sum) {
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const size_t row = static_cast<size_t>(b) * D;
      logp[b] = row_logp(
          x_next + row, [&](int d) { return mean[row + d]; }, std, D, sum);
    }
  });
}

double grpo_loss(float* dv, const float* v_theta, const float* v_ref, const float* x, const float* x_next,
                 const SdeRow* coefs, const float* advantages, const float* logp_old, int R, int D, const GrpoParams& p,
                 float scale, GrpoStats* stats) {
  struct RowResult {
    double loss;
    bool clipped;
    double ratio, log_ratio;
  };
  std::vector<RowResult> rows(R);
  const bool kl = p.kl_coef != 0.0f && v_ref != nullptr;
  global_pool().parallel_for(R, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const size_t row = static_cast<size_t>(r) * D;
      const SdeRow c = coefs[r];
      const float* xr = x + row;
      const float* vr = v_theta + row;
      auto mean_at = [&](int d) { return sde_mean(xr[d], vr[d], c.x_coef, c.v_coef); };
      const float logp = row_logp(x_next + row, mean_at, c.std, D, p.logp_sum);
      const PpoTerm ppo = ppo_term(logp, logp_old[r], advantages[r], p.clip_range);
      double kl_sum = 0;
      // ∂logp/∂mean_d = (x_next − mean)/std² (/D for the mean); ∂KL/∂mean_d = β_KL·(mean − mean_ref)/(σ²·D).
      const float g_logp = static_cast<float>(ppo.dlogp / (static_cast<double>(c.std) * c.std) / (p.logp_sum ? 1 : D));
      const float g_kl = kl ? static_cast<float>(p.kl_coef / (static_cast<double>(c.sigma) * c.sigma) / D) : 0.0f;
      const float to_v = scale * c.v_coef / static_cast<float>(R);
      for (int d = 0; d < D; ++d) {
        const float mean = mean_at(d);
        float g = g_logp * (x_next[row + d] - mean);
        if (kl) {
          const float diff = mean - sde_mean(xr[d], v_ref[row + d], c.x_coef, c.v_coef);
          kl_sum += static_cast<double>(diff) * diff;
          g += g_kl * diff;
        }
        dv[row + d] = to_v * g;
      }
      const double kl_term = kl ? p.kl_coef * kl_sum / D / (2.0 * c.sigma * c.sigma) : 0.0;
      rows[r] = {ppo.loss + kl_term, ppo.clipped, std::exp(static_cast<double>(logp) - logp_old[r]),
                 static_cast<double>(logp) - logp_old[r]};
    }
  });
  double loss = 0;
  for (const RowResult& row : rows) {
    loss += row.loss;
    if (stats != nullptr) {
      stats->clipped += row.clipped ? 1 : 0;
      stats->ratio_sum += row.ratio;
      stats->log_ratio_sq += row.log_ratio * row.log_ratio;
    }
  }
  return loss / R;
}

}  // namespace dnft::cpu
