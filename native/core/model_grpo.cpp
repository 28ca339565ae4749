// Model::grpo_step: one optimiser step of a likelihood method over recorded SDE rollouts (docs/algorithms.md §3.4–3.5,
// §9): FlowGRPO, CPS, the windows of Flow-GRPO-Fast and MixGRPO, GRPO-Guard.
#include <algorithm>
#include <vector>

#include "core/model.h"
#include "core/model_internal.h"

namespace dnft {

GrpoStepStats Model::grpo_step(const float* host_trajectory, const int32_t* host_tokens, const float* host_advantages,
                               const float* host_logp_old, int B, const GrpoStepOptions& o,
                               const float* host_means_old) {
  const NetConfig& c = net_->config();
  const size_t D = c.data_dim, L = c.cond_slots;
  const int N = static_cast<int>(o.grid.size()) - 1;
  if (N < 1 || o.train_steps < 1 || o.train_steps > N) {
    throw Error(Error::Kind::kRange, "train_steps must be in [1, N] for a grid of N steps");
  }
  if (!o.first_step.empty() && o.first_step.size() != static_cast<size_t>(B)) {
    throw Error(Error::Kind::kRange, "first_step needs one window start per sample");
  }
  const auto first = [&](int b) { return o.first_step.empty() ? 0 : o.first_step[b]; };
  for (int b = 0; b < B; ++b) {
    if (first(b) < 0 || first(b) + o.train_steps > N) {
      throw Error(Error::Kind::kRange, "a window of trained transitions must lie in the grid's N steps");
    }
  }
  // A rank with no rows of this step (B = 0, under MPI) has no means to pass: it only joins the sums.
  if (o.guard && (o.loss.kl_coef != 0.0f || o.loss.cps || (B > 0 && host_means_old == nullptr))) {
    throw Error(Error::Kind::kRange, "GRPO-Guard needs the FlowGRPO SDE, the stored step means and no KL term");
  }
  const bool kl = o.loss.kl_coef != 0.0f;
  const NetParams ref_params = kl ? weights(ParamSet::kRef) : NetParams(nullptr);
  const GrpoParams& params = o.loss;
  const SdeKind kind = params.cps ? SdeKind::kCps : SdeKind::kFlowGrpo;

  // Rows are (sample b, transition first(b) + j) for j < train_steps, sample-major, the guided transitions (start time
  // in the guidance interval) first: a micro-batch holds rows of one guidance scale only.
  const int T = o.train_steps, rows = B * T;
  if (B == 0) {
    backend_.fill(grads_.get(), 0.0f, trained_count());
    GrpoStats totals;
    const StepStats step = apply_step(0.0, 0, o.optimizer, &totals);
    return {step, totals.clipped / step.rows, 0.5 * totals.log_ratio_sq / step.rows, totals.ratio_sum / step.rows};
  }
  std::vector<double> scale(N);
  for (int n = 0; n < N; ++n) scale[n] = guidance_scale_at(o.cfg_scale, o.cfg_t_min, o.cfg_t_max, o.grid[n]);
  const auto step_of = [&](int id) { return first(id / T) + id % T; };
  std::vector<int> order;  // row ids b·T + j
  order.reserve(rows);
  for (int pass = 0; pass < 2; ++pass) {
    for (int id = 0; id < rows; ++id) {
      if ((scale[step_of(id)] != 1.0) == (pass == 0)) order.push_back(id);
    }
  }
  const bool cfg = std::any_of(scale.begin(), scale.end(), [](double s) { return s != 1.0; });
  const int micro = o.micro_batch > 0 && o.micro_batch < rows ? o.micro_batch : rows;
  const size_t cap = static_cast<size_t>(micro), stack = cfg ? 2 : 1;
  for (Buffer<float>* buffer : {&x_, &x_next_, &out_, &dout_, &v_ref_}) ensure(*buffer, backend_, cap * D);
  if (o.guard) ensure(mean_old_, backend_, cap * D);
  guidance_.reserve(backend_, cap, D);
  ensure(t_, backend_, stack * cap);
  ensure(r_, backend_, 2 * cap);  // advantages, then log p_old
  ensure(tokens_, backend_, stack * cap * L);
  ensure(rows_, backend_, cap);
  std::vector<SdeRow> coefs(N);
  for (int n = 0; n < N; ++n) {
    coefs[n] =
        sde_row(step_coefficients(kind, o.grid[n], o.grid[n + 1], o.sde_a, o.grid[1]), o.grid[n + 1] - o.grid[n]);
  }
  std::vector<float> host_x(cap * D), host_x_next(cap * D), host_t(stack * cap), host_scalars(2 * cap);
  std::vector<float> host_mean_old(o.guard ? cap * D : 0);
  std::vector<int32_t> host_rows_tokens(stack * cap * L, 0);
  std::vector<SdeRow> host_rows(cap);

  backend_.fill(grads_.get(), 0.0f, trained_count());
  GrpoStats stats;
  double loss = 0.0;
  const size_t plane = static_cast<size_t>(B) * D;  // one time step of the trajectory
  const int guided_rows =
      static_cast<int>(std::count_if(order.begin(), order.end(), [&](int id) { return scale[step_of(id)] != 1.0; }));
  for (int start = 0; start < rows;) {
    // A micro-batch ends where the guided rows end.
    const int end = start < guided_rows ? std::min(start + micro, guided_rows) : std::min(start + micro, rows);
    const int m = end - start;
    const double s = scale[step_of(order[start])];
    const bool guided = s != 1.0;
    for (int i = 0; i < m; ++i) {
      const int b = order[start + i] / T, n = step_of(order[start + i]);
      const size_t at = n * plane + static_cast<size_t>(b) * D;
      const float* state = host_trajectory + at;
      std::copy(state, state + D, host_x.begin() + i * D);
      std::copy(state + plane, state + plane + D, host_x_next.begin() + i * D);
      if (o.guard) std::copy(host_means_old + at, host_means_old + at + D, host_mean_old.begin() + i * D);
      std::copy(host_tokens + b * L, host_tokens + (b + 1) * L, host_rows_tokens.begin() + i * L);
      host_t[i] = static_cast<float>(o.grid[n]);
      if (guided) host_t[m + i] = host_t[i];
      host_rows[i] = coefs[n];
      host_scalars[i] = host_advantages[b];
      host_scalars[cap + i] = host_logp_old[static_cast<size_t>(n) * B + b];
    }
    // With guidance the null rows follow the m conditional ones (their tokens stay 0).
    if (guided) std::fill(host_rows_tokens.begin() + m * L, host_rows_tokens.begin() + 2 * m * L, 0);
    x_.upload(host_x.data(), m * D);
    x_next_.upload(host_x_next.data(), m * D);
    if (o.guard) mean_old_.upload(host_mean_old.data(), m * D);
    t_.upload(host_t.data(), (guided ? 2 : 1) * m);
    tokens_.upload(host_rows_tokens.data(), (guided ? 2 : 1) * m * L);
    rows_.upload(host_rows.data(), m);
    r_.upload(host_scalars.data(), 2 * cap);

    // The reference first: the workspace keeps the last forward's activations, θ's, for the backward.
    if (kl) {
      guidance_.forward(backend_, *net_, *workspace_, ref_params, x_.get(), t_.get(), tokens_.get(), m, s,
                        v_ref_.get());
    }
    guidance_.forward(backend_, *net_, *workspace_, weights(), x_.get(), t_.get(), tokens_.get(), m, s, out_.get());
    const float share = static_cast<float>(m) / static_cast<float>(rows);
    const int Di = static_cast<int>(D);
    loss += share *
            (o.guard ? backend_.guard_loss(dout_.get(), out_.get(), x_.get(), x_next_.get(), mean_old_.get(),
                                           rows_.get(), r_.get(), r_.get() + cap, m, Di, params, share, &stats)
                     : backend_.grpo_loss(dout_.get(), out_.get(), kl ? v_ref_.get() : nullptr, x_.get(), x_next_.get(),
                                          rows_.get(), r_.get(), r_.get() + cap, m, Di, params, share, &stats));
    guidance_.backward(backend_, *net_, *workspace_, weights(), gradients(), x_.get(), tokens_.get(), dout_.get(), m,
                       s);
    start = end;
  }
  const StepStats step = apply_step(loss, rows, o.optimizer, &stats);
  return {step, stats.clipped / step.rows, 0.5 * stats.log_ratio_sq / step.rows, stats.ratio_sum / step.rows};
}

}  // namespace dnft
