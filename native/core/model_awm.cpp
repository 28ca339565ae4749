// Model::awm_step: one AWM optimiser step (docs/algorithms.md §7).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/math/philox.h"
#include "core/model.h"
#include "core/model_internal.h"

namespace dnft {

namespace {

// The training times of every (sample, k) row: one grid index drawn uniformly in each stratum, on the host so that
// both backends see the same ones.
std::vector<float> awm_training_times(const AwmStepOptions& o, int B, int64_t step) {
  const int K = static_cast<int>(o.strata.size()) - 1, N = static_cast<int>(o.times.size());
  if (K < 1) throw Error(Error::Kind::kRange, "AWM needs at least one stratum of training times");
  for (int k = 0; k <= K; ++k) {
    const double bound = o.strata[k];
    if (!(bound >= 0 && bound < N && bound == std::floor(bound) && (k == 0 || bound >= o.strata[k - 1]))) {
      throw Error(Error::Kind::kRange, "the strata must be nondecreasing grid indices below " + std::to_string(N));
    }
  }
  const uint64_t first = static_cast<uint64_t>(o.first_sample);
  std::vector<float> t(static_cast<size_t>(B) * K);
  for (int b = 0; b < B; ++b) {
    for (int k = 0; k < K; ++k) {
      const int lo = static_cast<int>(o.strata[k]), hi = static_cast<int>(o.strata[k + 1]);
      const float u = philox_uniform(o.seed, kStreamTime, step_offset(step) + (first + b) * K + k);
      const int index = hi <= lo ? lo : std::min(hi - 1, lo + static_cast<int>(u * static_cast<float>(hi - lo)));
      t[static_cast<size_t>(b) * K + k] = static_cast<float>(o.times[index]);
    }
  }
  return t;
}

}  // namespace

AwmStepStats Model::awm_step(const float* host_x0, const int32_t* host_tokens, const float* host_advantages, int B,
                             const AwmStepOptions& o) {
  const int D = static_cast<int>(net_->config().data_dim);
  const bool kl = o.loss.kl_coef != 0.0f, ema = o.loss.ema_coef != 0.0f;
  const NetParams ema_params = ema ? weights(ParamSet::kOld) : NetParams(nullptr);
  const NetParams ref_params = kl ? weights(ParamSet::kRef) : NetParams(nullptr);
  const int64_t step = step_ + 1;
  const std::vector<float> times = awm_training_times(o, B, step);
  const int K = static_cast<int>(o.strata.size()) - 1, rows = B * K;
  backend_.fill(grads_.get(), 0.0f, trained_count());
  AwmStats sums;
  const double loss = B == 0
                          ? 0.0
                          : noised_rows(host_x0, host_tokens, host_advantages, B, K, times.data(), o.micro_batch,
                                        o.seed, o.first_sample, step, ema ? &ema_params : nullptr,
                                        kl ? &ref_params : nullptr, [&](int m, float share) {
                                          return backend_.awm_loss(dout_.get(), out_.get(), kl ? v_ref_.get() : nullptr,
                                                                   ema ? v_old_.get() : nullptr, target_.get(),
                                                                   t_.get(), r_.get(), m, D, o.loss, share, &sums);
                                        });
  double totals[5] = {static_cast<double>(rows), sums.fm, sums.log_q, sums.kl, sums.ema};
  if (communicator_ != nullptr) communicator_->sum(totals, 5);
  AwmStepStats stats{};
  stats.step = apply_step(loss, rows, o.optimizer);
  if (totals[0] > 0)
    stats.means = {totals[1] / totals[0], totals[2] / totals[0], totals[3] / totals[0], totals[4] / totals[0]};
  return stats;
}

}  // namespace dnft
