#include "core/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/math/adamw.h"

namespace dnft {

double learning_rate(const OptimizerConfig& c, int64_t step) {
  if (c.warmup_steps > 0 && step <= c.warmup_steps) return c.lr * static_cast<double>(step) / c.warmup_steps;
  if (c.schedule == LrSchedule::kConstant || c.total_steps <= c.warmup_steps) return c.lr;
  const double progress =
      std::min(1.0, static_cast<double>(step - c.warmup_steps) / static_cast<double>(c.total_steps - c.warmup_steps));
  const double shape = c.schedule == LrSchedule::kCosine ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;
  return c.min_lr + (c.lr - c.min_lr) * shape;
}

OptimizerResult adamw_step(Backend& backend, const std::vector<ParamSpec>& layout, float* params, float* m, float* v,
                           const float* grads, size_t count, double grad_scale, const OptimizerConfig& c,
                           int64_t step) {
  const double grad_norm = std::sqrt(backend.sum_squares(grads, count)) * grad_scale;
  if (!std::isfinite(grad_norm)) {
    throw Error(Error::Kind::kNumeric, "the gradient is not finite (NaN or Inf); the step was not applied");
  }
  double scale = grad_scale;
  if (c.max_grad_norm > 0.0 && grad_norm > c.max_grad_norm) scale *= c.max_grad_norm / (grad_norm + 1e-6);
  const double lr = learning_rate(c, step);
  AdamWStep s{static_cast<float>(lr),
              static_cast<float>(c.beta1),
              static_cast<float>(c.beta2),
              static_cast<float>(c.eps),
              0.0f,
              static_cast<float>(1.0 - std::pow(c.beta1, static_cast<double>(step))),
              static_cast<float>(1.0 - std::pow(c.beta2, static_cast<double>(step))),
              static_cast<float>(scale)};
  for (const ParamSpec& p : layout) {
    s.weight_decay = p.decay ? static_cast<float>(c.weight_decay) : 0.0f;
    backend.adamw(params + p.offset, m + p.offset, v + p.offset, grads + p.offset, p.size, s);
  }
  return {grad_norm, lr};
}

}  // namespace dnft
