#include "core/math/sde.h"

#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

namespace {

// The log-probability of one row: per-element float32 terms summed in double (core/math/sde.h).
template <typename MeanAt>
float row_logp(const float* x_next, MeanAt mean_at, float std, int D, bool sum, bool cps) {
  double acc = 0;
  for (int d = 0; d < D; ++d) acc += step_logp(x_next[d], mean_at(d), std, cps);
  return sde_row_logp(acc, D, sum);
}

}  // namespace

void CpuBackend::sde_logp(float* logp, const float* x_next, const float* mean, float std, int B, int D, bool sum,
                          bool cps) {
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const size_t row = static_cast<size_t>(b) * D;
      logp[b] = row_logp(
          x_next + row, [&](int d) { return mean[row + d]; }, std, D, sum, cps);
    }
  });
}

double CpuBackend::grpo_loss(float* dv, const float* v_theta, const float* v_ref, const float* x, const float* x_next,
                             const SdeRow* coefs, const float* advantages, const float* logp_old, int R, int D,
                             const GrpoParams& p, float scale, GrpoStats* stats) {
  std::vector<GrpoRowResult> rows(R);
  const bool kl = p.kl_coef != 0.0f && v_ref != nullptr;
  global_pool().parallel_for(R, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const size_t row = static_cast<size_t>(r) * D;
      const SdeRow c = coefs[r];
      const float* xr = x + row;
      const float* vr = v_theta + row;
      auto mean_at = [&](int d) { return sde_mean(xr[d], vr[d], c.x_coef, c.v_coef); };
      const float logp = row_logp(x_next + row, mean_at, c.std, D, p.logp_sum, p.cps);
      const PpoTerm ppo = ppo_term(logp, logp_old[r], advantages[r], p.clip_range);
      const GrpoRowCoefs k = grpo_row_coefs(ppo, c, p, kl, D, R, scale);
      double kl_sum = 0;
      for (int d = 0; d < D; ++d) {
        const GrpoElement e = grpo_element(xr[d], x_next[row + d], vr[d], kl ? v_ref[row + d] : 0.0f, c, k, kl);
        kl_sum += static_cast<double>(e.kl_diff) * e.kl_diff;
        dv[row + d] = e.dv;
      }
      rows[r] = grpo_row_result(ppo, logp, logp_old[r], kl_sum, c, p, kl, D);
    }
  });
  return sum_grpo_rows(rows.data(), R, stats);
}

double CpuBackend::guard_loss(float* dv, const float* v_theta, const float* x, const float* x_next,
                              const float* mean_old, const SdeRow* coefs, const float* advantages,
                              const float* logp_old, int R, int D, const GrpoParams& p, float scale, GrpoStats* stats) {
  std::vector<GrpoRowResult> rows(R);
  global_pool().parallel_for(R, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const size_t row = static_cast<size_t>(r) * D;
      const SdeRow c = coefs[r];
      double logp_acc = 0, bias = 0;
      for (int d = 0; d < D; ++d) {
        const float mean = sde_mean(x[row + d], v_theta[row + d], c.x_coef, c.v_coef);
        const float diff = mean - mean_old[row + d];
        logp_acc += gaussian_logp(x_next[row + d], mean, c.std);
        bias += static_cast<double>(diff) * diff;
      }
      const float logp = sde_row_logp(logp_acc, D, p.logp_sum);
      const float log_ratio = guard_log_ratio(logp, logp_old[r], bias, c, p.logp_sum, D);
      const PpoTerm ppo = ppo_term(log_ratio, 0.0f, advantages[r], p.clip_range);
      const float to_v = guard_to_v(ppo, c, p.logp_sum, D, R, scale);
      for (int d = 0; d < D; ++d) dv[row + d] = to_v * (x_next[row + d] - mean_old[row + d]);
      rows[r] = guard_row_result(ppo, log_ratio, c);
    }
  });
  return sum_grpo_rows(rows.data(), R, stats);
}

}  // namespace dnft::cpu
