// FlowGRPO, CPS and GRPO-Guard: per-row SDE log-probabilities and the fused GRPO and Guard losses, one block per row
// with double sums; the host adds the rows' results in row order (sum_grpo_rows), as the CPU does.
#include "core/math/sde.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/reduce.cuh"

namespace dnft::cuda {

namespace {

__global__ void __launch_bounds__(kRowThreads)
    sde_logp_kernel(float* logp, const float* x_next, const float* mean, float std, int D, bool sum, bool cps) {
  const size_t row = static_cast<size_t>(blockIdx.x) * D;
  double acc = 0.0;
  for (int d = threadIdx.x; d < D; d += kRowThreads) acc += step_logp(x_next[row + d], mean[row + d], std, cps);
  const double total = row_sum(acc);
  if (threadIdx.x == 0) logp[blockIdx.x] = sde_row_logp(total, D, sum);
}

__global__ void __launch_bounds__(kRowThreads)
    grpo_loss_kernel(GrpoRowResult* rows, float* dv, const float* v_theta, const float* v_ref, const float* x,
                     const float* x_next, const SdeRow* coefs, const float* advantages, const float* logp_old, int R,
                     int D, GrpoParams p, bool kl, float scale) {
  const size_t r = blockIdx.x, row = r * D;
  const SdeRow c = coefs[r];
  double acc = 0.0;
  for (int d = threadIdx.x; d < D; d += kRowThreads) {
    acc += step_logp(x_next[row + d], sde_mean(x[row + d], v_theta[row + d], c.x_coef, c.v_coef), c.std, p.cps);
  }
  const float logp = sde_row_logp(row_sum(acc), D, p.logp_sum);
  const PpoTerm ppo = ppo_term(logp, logp_old[r], advantages[r], p.clip_range);
  const GrpoRowCoefs k = grpo_row_coefs(ppo, c, p, kl, D, R, scale);
  double kl_sum = 0.0;
  for (int d = threadIdx.x; d < D; d += kRowThreads) {
    const GrpoElement e =
        grpo_element(x[row + d], x_next[row + d], v_theta[row + d], kl ? v_ref[row + d] : 0.0f, c, k, kl);
    kl_sum += static_cast<double>(e.kl_diff) * e.kl_diff;
    dv[row + d] = e.dv;
  }
  const double kl_total = row_sum(kl_sum);
  if (threadIdx.x == 0) rows[r] = grpo_row_result(ppo, logp, logp_old[r], kl_total, c, p, kl, D);
}

__global__ void __launch_bounds__(kRowThreads)
    guard_loss_kernel(GrpoRowResult* rows, float* dv, const float* v_theta, const float* x, const float* x_next,
                      const float* mean_old, const SdeRow* coefs, const float* advantages, const float* logp_old, int R,
                      int D, GrpoParams p, float scale) {
  const size_t r = blockIdx.x, row = r * D;
  const SdeRow c = coefs[r];
  double logp_acc = 0.0, bias = 0.0;
  for (int d = threadIdx.x; d < D; d += kRowThreads) {
    const float mean = sde_mean(x[row + d], v_theta[row + d], c.x_coef, c.v_coef);
    const float diff = mean - mean_old[row + d];
    logp_acc += gaussian_logp(x_next[row + d], mean, c.std);
    bias += static_cast<double>(diff) * diff;
  }
  const float logp = sde_row_logp(row_sum(logp_acc), D, p.logp_sum);
  const float log_ratio = guard_log_ratio(logp, logp_old[r], row_sum(bias), c, p.logp_sum, D);
  const PpoTerm ppo = ppo_term(log_ratio, 0.0f, advantages[r], p.clip_range);
  const float to_v = guard_to_v(ppo, c, p.logp_sum, D, R, scale);
  for (int d = threadIdx.x; d < D; d += kRowThreads) dv[row + d] = to_v * (x_next[row + d] - mean_old[row + d]);
  if (threadIdx.x == 0) rows[r] = guard_row_result(ppo, log_ratio, c);
}

}  // namespace

void CudaBackend::sde_logp(float* logp, const float* x_next, const float* mean, float std, int B, int D, bool sum,
                           bool cps) {
  launch_rows(ctx_, B, sde_logp_kernel, "sde_logp", logp, x_next, mean, std, D, sum, cps);
}

double CudaBackend::grpo_loss(float* dv, const float* v_theta, const float* v_ref, const float* x, const float* x_next,
                              const SdeRow* coefs, const float* advantages, const float* logp_old, int R, int D,
                              const GrpoParams& p, float scale, GrpoStats* stats) {
  if (R <= 0) return 0.0;
  const bool kl = p.kl_coef != 0.0f && v_ref != nullptr;
  auto* rows = static_cast<GrpoRowResult*>(ctx_.scratch->get(static_cast<size_t>(R) * sizeof(GrpoRowResult)));
  launch_rows(ctx_, R, grpo_loss_kernel, "grpo_loss", rows, dv, v_theta, v_ref, x, x_next, coefs, advantages, logp_old,
              R, D, p, kl, scale);
  const std::vector<GrpoRowResult> host = download(ctx_, rows, static_cast<size_t>(R));
  return sum_grpo_rows(host.data(), R, stats);
}

double CudaBackend::guard_loss(float* dv, const float* v_theta, const float* x, const float* x_next,
                               const float* mean_old, const SdeRow* coefs, const float* advantages,
                               const float* logp_old, int R, int D, const GrpoParams& p, float scale,
                               GrpoStats* stats) {
  if (R <= 0) return 0.0;
  auto* rows = static_cast<GrpoRowResult*>(ctx_.scratch->get(static_cast<size_t>(R) * sizeof(GrpoRowResult)));
  launch_rows(ctx_, R, guard_loss_kernel, "guard_loss", rows, dv, v_theta, x, x_next, mean_old, coefs, advantages,
              logp_old, R, D, p, scale);
  const std::vector<GrpoRowResult> host = download(ctx_, rows, static_cast<size_t>(R));
  return sum_grpo_rows(host.data(), R, stats);
}

}  // namespace dnft::cuda
