#include "core/optimizer.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/math/adamw.h"

namespace dnft {

double learning_rate(const OptimizerConfig& c, int64_t step) {
  if (c.warmup_steps > 0 && step <= c.warmup_steps) return c.lr * static_cast<double>(step) / c.warmup_steps;
  if (c.schedule == LrSchedule::kDrop) return step <= c.total_steps ? c.lr : c.min_lr;
  if (c.schedule == LrSchedule::kConstant || c.total_steps <= c.warmup_steps) return c.lr;
  const double progress =
      std::min(1.0, static_cast<double>(step - c.warmup_steps) / static_cast<double>(c.total_steps - c.warmup_steps));
  const double shape = c.schedule == LrSchedule::kCosine ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;
  return c.min_lr + (c.lr - c.min_lr) * shape;
}

namespace {

// Refuses a step before it changes anything when some element could leave the float range. Every element obeys
// |m'| <= b1·|m| + (1 − b1)·|g|, v' <= b2·|v| + (1 − b2)·g² and |p'| <= |p| + lr·(|m'|/(bc1·eps) + wd·|p|), and
// each |x| is at most the 2-norm of its buffer; when these bounds stay well inside the float range, so does the
// update. (v >= 0 holds: v' of v >= 0 is >= 0, and the binding rejects negative moments.)
void check_update_bound(const AdamWSums& sums, double g_norm, double lr, double bias_correction1,
                        const OptimizerConfig& c) {
  constexpr double kLimit = 1e37;
  const double m_norm = std::sqrt(sums.m), v_norm = std::sqrt(sums.v), p_norm = std::sqrt(sums.param);
  const double m_bound = c.beta1 * m_norm + (1.0 - c.beta1) * g_norm;
  const double v_bound = c.beta2 * v_norm + (1.0 - c.beta2) * g_norm * g_norm;
  const double p_bound = p_norm + lr * (m_bound / (bias_correction1 * c.eps) + c.weight_decay * p_norm);
  if (!(m_bound < kLimit && v_bound < kLimit && p_bound < kLimit)) {
    throw Error(Error::Kind::kNumeric, "the update could overflow to Inf or NaN (gradient norm " +
                                           std::to_string(g_norm) + "); the step was not applied");
  }
}

}  // namespace

OptimizerResult adamw_step(Backend& backend, const std::vector<ParamSpec>& layout, float* params, float* m, float* v,
                           const float* grads, size_t count, double grad_scale, const OptimizerConfig& c, int64_t step,
                           Buffer<float>& backup, std::optional<AdamWSums>& sums) {
  // Taken out: they hold again only after a completed update (a refused or failed step measures them next time).
  std::optional<AdamWSums> before;
  before.swap(sums);
  const double grad_norm = std::sqrt(backend.sum_squares(grads, count)) * grad_scale;
  if (!std::isfinite(grad_norm)) {
    throw Error(Error::Kind::kNumeric, "the gradient is not finite (NaN or Inf); the step was not applied");
  }
  if (!before) {
    before.emplace();
    before->m = backend.sum_squares(m, count);
    before->v = backend.sum_squares(v, count);
    before->param = backend.sum_squares(params, count);
  }
  double scale = grad_scale;
  if (c.max_grad_norm > 0.0 && grad_norm > c.max_grad_norm) scale *= c.max_grad_norm / (grad_norm + 1e-6);
  const double lr = learning_rate(c, step);
  const double bias_correction1 = 1.0 - std::pow(c.beta1, static_cast<double>(step));
  check_update_bound(*before, grad_norm / grad_scale * scale, lr, bias_correction1, c);
  AdamWStep s{static_cast<float>(lr),
              static_cast<float>(c.beta1),
              static_cast<float>(c.beta2),
              static_cast<float>(c.eps),
              0.0f,
              static_cast<float>(bias_correction1),
              static_cast<float>(1.0 - std::pow(c.beta2, static_cast<double>(step))),
              static_cast<float>(scale)};
  // One op per parameter tensor. Where a later one can fail after earlier ones took effect (a launch on a GPU), θ, m
  // and v are copied first and put back on failure, so the step is all or nothing.
  const bool backed_up = backend.ops_fail_midway();
  if (backed_up) {
    ensure(backup, backend, 3 * count);
    backend.copy(backup.get(), params, count * sizeof(float));
    backend.copy(backup.get() + count, m, count * sizeof(float));
    backend.copy(backup.get() + 2 * count, v, count * sizeof(float));
  }
  std::optional<AdamWSums> after = AdamWSums{};
  try {
    for (const ParamSpec& p : layout) {
      s.weight_decay = p.decay ? static_cast<float>(c.weight_decay) : 0.0f;
      const std::optional<AdamWSums> part =
          backend.adamw(params + p.offset, m + p.offset, v + p.offset, grads + p.offset, p.size, s);
      if (part && after) {
        *after += *part;
      } else {
        after.reset();
      }
    }
  } catch (const Error&) {
    if (!backed_up) throw;
    backend.copy(params, backup.get(), count * sizeof(float));
    backend.copy(m, backup.get() + count, count * sizeof(float));
    backend.copy(v, backup.get() + 2 * count, count * sizeof(float));
    throw;
  }
  sums = after;
  return {grad_norm, lr};
}

}  // namespace dnft
