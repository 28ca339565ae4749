// Option structs with every field set, for the C++ tests. The structs hold no defaults (the TypeScript schemas own
// them, docs/architecture.md); these are the schemas' values, which a test then changes where it means to.
#pragma once

#include "core/math/nft_loss.h"
#include "core/math/sde.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/sampler.h"

namespace dnft::test {

inline OptimizerConfig optimizer_options() {
  OptimizerConfig c{};
  c.lr = 3e-4;
  c.beta1 = 0.9;
  c.beta2 = 0.999;
  c.eps = 1e-8;
  c.weight_decay = 1e-4;
  c.max_grad_norm = 1.0;
  c.warmup_steps = 0;
  c.schedule = LrSchedule::kConstant;
  c.total_steps = 0;
  c.min_lr = 0.0;
  return c;
}

inline FlowMatchingOptions flow_matching_options() {
  FlowMatchingOptions o{};
  o.seed = 0;
  o.micro_batch = 0;
  o.cond_dropout = 0.0;
  o.optimizer = optimizer_options();
  return o;
}

inline NftLossParams nft_loss_params() {
  NftLossParams p{};
  p.beta = 1.0f;
  p.adv_clip_max = 5.0f;
  p.adaptive = true;
  p.positive_only = false;
  p.kl_coef = 0.0f;
  return p;
}

inline NftStepOptions nft_step_options() {
  NftStepOptions o{};
  o.seed = 0;
  o.times = {};
  o.times_per_sample = 1;
  o.micro_batch = 0;
  o.loss = nft_loss_params();
  o.optimizer = optimizer_options();
  return o;
}

inline GrpoParams grpo_params() {
  GrpoParams p{};
  p.clip_range = 1e-4f;
  p.kl_coef = 0.0f;
  p.logp_sum = false;
  p.cps = false;
  return p;
}

// The grid is the test's to set.
inline GrpoStepOptions grpo_step_options() {
  GrpoStepOptions o{};
  o.grid = {};
  o.train_steps = 1;
  o.first_step = {};
  o.sde_a = 0.7;
  o.guard = false;
  o.cfg_scale = 1.0;
  o.cfg_t_min = 0.0;
  o.cfg_t_max = 1.0;
  o.micro_batch = 0;
  o.loss = grpo_params();
  o.optimizer = optimizer_options();
  return o;
}

// The grid is the test's to set.
inline SampleOptions sample_options() {
  SampleOptions o{};
  o.solver = SolverKind::kEuler;
  o.grid = {};
  o.cfg_scale = 1.0;
  o.cfg_t_min = 0.0;
  o.cfg_t_max = 1.0;
  o.seed = 0;
  o.first_sample = 0;
  o.chunk = 1024;
  o.sde_a = 0.7;
  o.logp_sum = false;
  o.sde_kind = SdeKind::kFlowGrpo;
  o.window_lo = 0;
  o.window_hi = -1;
  o.tail_solver = SolverKind::kEuler;
  return o;
}

}  // namespace dnft::test
