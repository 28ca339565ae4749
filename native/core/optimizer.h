// AdamW with decoupled weight decay, global grad-norm clipping and a warm-up + decay learning-rate schedule,
// applied to a flat parameter buffer with its layout.
#pragma once

#include <optional>
#include <vector>

#include "core/backend.h"
#include "core/buffer.h"
#include "core/net_config.h"

namespace dnft {

// kDrop: lr up to total_steps, then min_lr (a step drop).
enum class LrSchedule { kConstant, kCosine, kLinear, kDrop };

// The option structs hold no defaults: lib/ resolves every field (docs/architecture.md).
struct OptimizerConfig {
  double lr{};
  double beta1{}, beta2{}, eps{};
  double weight_decay{};   // not applied to biases and embeddings (ParamSpec::decay)
  double max_grad_norm{};  // 0 disables clipping
  int64_t warmup_steps{};  // linear ramp from 0 to lr
  LrSchedule schedule{};
  int64_t total_steps{};  // end of the cosine/linear decay, or the last step at lr of kDrop
  double min_lr{};        // reached at total_steps (kDrop: after it)
};

// Learning rate for optimiser step `step` (1-based).
double learning_rate(const OptimizerConfig& config, int64_t step);

struct OptimizerResult {
  double grad_norm;  // before clipping, of the averaged gradient
  double lr;
};

// One AdamW step over every parameter of the layout. grads hold a sum that grad_scale turns into the mean.
// Throws Error(kNumeric) and changes nothing when the gradient is not finite; a backend failure part-way leaves
// params, m and v as they were too (on a backend whose ops can fail midway, `backup` grows to 3·count floats to
// hold them during the step; the caller keeps it from step to step). `sums`: the squared sums of params, m and v
// when the caller knows them (the previous step's, with nothing written since), else empty; the step leaves the
// new ones there, or empties it when it throws.
OptimizerResult adamw_step(Backend& backend, const std::vector<ParamSpec>& layout, float* params, float* m, float* v,
                           const float* grads, size_t count, double grad_scale, const OptimizerConfig& config,
                           int64_t step, Buffer<float>& backup, std::optional<AdamWSums>& sums);

}  // namespace dnft
