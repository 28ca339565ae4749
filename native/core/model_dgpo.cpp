// Model::dgpo_step: one DGPO optimiser step (docs/algorithms.md §8). The group weights σ(S_g) need every member's
// error before any gradient, so the rows are first evaluated without one (θ, the base and the fast EMA), the
// per-(group, time) sums S are added over the ranks, and a second pass trains; when one micro-batch holds every row
// the first pass's θ forward is reused.
#include <algorithm>
#include <string>
#include <vector>

#include "core/math/philox.h"
#include "core/model.h"
#include "core/model_internal.h"

namespace dnft {

DgpoStepStats Model::dgpo_step(const float* host_x0, const int32_t* host_tokens, const float* host_advantages,
                               const int32_t* host_groups, int B, const DgpoStepOptions& o) {
  const NetConfig& c = net_->config();
  const size_t D = c.data_dim, L = c.cond_slots;
  const int M = static_cast<int>(o.times.size()), rows = B * M;
  if (M < 1) throw Error(Error::Kind::kRange, "DGPO needs at least one training time");
  if (o.groups < 1 || o.loss.group_size < 1) throw Error(Error::Kind::kRange, "DGPO needs groups and a group size");
  for (int b = 0; b < B; ++b) {
    if (host_groups[b] < 0 || host_groups[b] >= o.groups) {
      throw Error(Error::Kind::kRange, "group id " + std::to_string(host_groups[b]) + " of sample " +
                                           std::to_string(b) + " is outside [0, " + std::to_string(o.groups) + ")");
    }
  }
  const bool kl = o.loss.kl_coef != 0.0;
  const bool with_ref = kl || !o.loss.ema_ref;
  const NetParams ref_params = with_ref ? weights(ParamSet::kRef) : NetParams(nullptr);
  const NetParams old_params = weights(ParamSet::kOld);
  const int64_t step = step_ + 1;
  const int micro = o.micro_batch > 0 && o.micro_batch < rows ? o.micro_batch : std::max(rows, 1);
  const bool one_pass = micro >= rows;
  const size_t capacity = static_cast<size_t>(micro);
  for (Buffer<float>* buffer : {&x_, &xt_, &target_, &out_, &dout_, &v_old_, &v_ref_}) {
    ensure(*buffer, backend_, capacity * D);
  }
  for (Buffer<float>* buffer : {&t_, &r_, &keep_}) ensure(*buffer, backend_, capacity);
  ensure(tokens_, backend_, capacity * L);
  std::vector<float> host_x(capacity * D), host_t(capacity);
  std::vector<int32_t> host_rows_tokens(capacity * L);

  // Stages rows [start, start + m): sample b = row / M at time j = row % M, noised with the draws of (group, j).
  auto stage = [&](int start, int m) {
    for (int i = 0; i < m; ++i) {
      const size_t b = static_cast<size_t>(start + i) / M;
      std::copy(host_x0 + b * D, host_x0 + (b + 1) * D, host_x.begin() + i * D);
      std::copy(host_tokens + b * L, host_tokens + (b + 1) * L, host_rows_tokens.begin() + i * L);
      host_t[i] = static_cast<float>(o.times[(start + i) % M]);
    }
    x_.upload(host_x.data(), m * D);
    tokens_.upload(host_rows_tokens.data(), m * L);
    t_.upload(host_t.data(), m);
    for (int i = 0; i < m; ++i) {
      const int row = start + i, j = row % M;
      const uint64_t noise = static_cast<uint64_t>(host_groups[row / M]) * M + j;
      backend_.interpolate(xt_.get() + i * D, target_.get() + i * D, x_.get() + i * D, t_.get() + i, 1,
                           static_cast<int>(D), o.seed, step_offset(step) + noise * D);
    }
  };
  auto forward = [&](const NetParams& params, int m, float* out) {
    net_->forward(backend_, *workspace_, params, xt_.get(), t_.get(), tokens_.get(), m, out);
  };

  // Pass 1: the errors l, l_ref and l_old of every row, without gradients.
  std::vector<double> l(rows), l_ref(rows), l_old(rows);
  for (int start = 0; start < rows; start += micro) {
    const int m = std::min(micro, rows - start);
    stage(start, m);
    if (with_ref) {
      forward(ref_params, m, v_ref_.get());
      backend_.row_mean_sq(l_ref.data() + start, v_ref_.get(), target_.get(), m, static_cast<int>(D));
    }
    forward(old_params, m, v_old_.get());
    backend_.row_mean_sq(l_old.data() + start, v_old_.get(), target_.get(), m, static_cast<int>(D));
    forward(weights(), m, out_.get());
    backend_.row_mean_sq(l.data() + start, out_.get(), target_.get(), m, static_cast<int>(D));
  }

  // S_g per (group, time), summed over every rank's rows, then the rows' weights.
  std::vector<double> S(static_cast<size_t>(o.groups) * M, 0.0);
  dgpo_group_sums(S.data(), l.data(), l_ref.data(), l_old.data(), host_advantages, host_groups, rows, M, o.loss);
  if (communicator_ != nullptr) communicator_->sum(S.data(), S.size());
  std::vector<float> weight(rows), keep(rows);
  const DgpoWeightSums sums = dgpo_row_weights(weight.data(), keep.data(), S.data(), l.data(), l_old.data(),
                                               host_advantages, host_groups, rows, M, o.loss);

  // Pass 2: the loss and the backward.
  backend_.fill(grads_.get(), 0.0f, trained_count());
  double loss = 0.0;
  for (int start = 0; start < rows; start += micro) {
    const int m = std::min(micro, rows - start);
    if (!one_pass) {
      stage(start, m);
      if (kl) forward(ref_params, m, v_ref_.get());
      forward(weights(), m, out_.get());
    }
    r_.upload(weight.data() + start, m);
    keep_.upload(keep.data() + start, m);
    const float share = static_cast<float>(m) / static_cast<float>(rows);
    loss += share * backend_.dgpo_loss(dout_.get(), out_.get(), kl ? v_ref_.get() : nullptr, target_.get(), r_.get(),
                                       keep_.get(), m, static_cast<int>(D), static_cast<float>(o.loss.kl_coef), share);
    net_->backward(backend_, *workspace_, weights(), gradients(), xt_.get(), tokens_.get(), dout_.get(), m, nullptr);
  }
  double totals[3] = {static_cast<double>(rows), sums.clipped, sums.weight_sum};
  if (communicator_ != nullptr) communicator_->sum(totals, 3);
  DgpoStepStats stats{};
  stats.step = apply_step(loss, rows, o.optimizer);
  stats.clip_fraction = totals[0] > 0 ? totals[1] / totals[0] : 0.0;
  stats.weight_mean = totals[0] > 0 ? totals[2] / totals[0] : 0.0;
  return stats;
}

}  // namespace dnft
