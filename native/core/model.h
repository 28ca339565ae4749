// A velocity network with its parameters, optimiser state and scratch on one backend: the native object behind a
// JS VelocityNet. Methods take host pointers; the model stages them on its backend. Not thread-safe by itself:
// the binding serialises calls with mutex().
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/communicator.h"
#include "core/guidance.h"
#include "core/network.h"
#include "core/optimizer.h"
#include "core/sampler.h"

namespace dnft {

struct FlowMatchingOptions {
  uint64_t seed{};         // keys the Philox draws of t, noise and dropout (with the optimiser step)
  int micro_batch{};       // gradient accumulation: rows per forward/backward, 0 = the whole batch
  double cond_dropout{};   // probability that a sample's condition is replaced by the null condition
  int64_t first_sample{};  // index of row 0 in the step's global batch (data-parallel), keys its draws
  OptimizerConfig optimizer{};
};

// The parameter sets of a model, each a flat buffer with the network's layout (docs/architecture.md): θ, the one
// trained; θ_old, the lagging rollout policy of DiffusionNFT; θ_ref, the frozen reference of the KL terms; an EMA of
// θ for evaluation. Only θ exists from the start; the others are made as copies (copy_params). With LoRA adapters
// (enable_lora) θ is the frozen base and every set is an adapter set over it: the trained one, θ_old, θ_ref, the EMA.
enum class ParamSet { kTheta = 0, kOld = 1, kRef = 2, kEma = 3 };
constexpr int kParamSetCount = 4;
const char* param_set_name(ParamSet which);

// One DiffusionNFT optimiser step (docs/algorithms.md §2.3–2.4).
struct NftStepOptions {
  uint64_t seed{};            // keys the draws of training times and noise (with the optimiser step)
  std::vector<double> times;  // candidate training times (the rollout grid without t = 0); empty: t ~ U(0, 1)
  int times_per_sample{};     // K times per sample: distinct grid times, or K uniform draws
  int micro_batch{};          // (sample, time) rows per forward/backward, 0 = all
  int64_t first_sample{};     // index of sample 0 in the step's global batch (data-parallel), keys its draws
  NftLossParams loss{};
  OptimizerConfig optimizer{};
};

// One optimiser step of a likelihood method (FlowGRPO, docs/algorithms.md §3.4–3.5; CPS, Flow-GRPO-Fast, MixGRPO,
// GRPO-Guard, §9) over recorded SDE rollouts.
struct GrpoStepOptions {
  std::vector<double> grid;  // the rollout grid t_0 = 1 > … > t_N = 0
  int train_steps{};  // transitions n = first_step[b] … first_step[b] + train_steps − 1 of sample b are trained
  std::vector<int> first_step;  // per sample (empty: 0 for all, FlowGRPO's first ⌊0.99·N⌋): an SDE window's start
  double sde_a{};               // the rollout's step is loss.cps's: CPS or FlowGRPO's SDE
  bool guard{};                 // GRPO-Guard's loss (RatioNorm, 1/|dt| weights) from the stored step means
  double cfg_scale{};           // guidance in the training forward (and the reference), as in the rollout
  double cfg_t_min{};           // ... at the transitions whose start time t lies in [cfg_t_min, cfg_t_max]
  double cfg_t_max{};
  int micro_batch{};  // (sample, transition) rows per forward/backward, 0 = all
  GrpoParams loss{};
  OptimizerConfig optimizer{};
};

struct StepStats {
  double loss;
  double grad_norm;
  double lr;
  int64_t step;
  double rows;  // rows of the step, over every rank
};

struct GrpoStepStats {
  StepStats step;
  double clip_fraction;  // rows with |ratio − 1| > ε
  double approx_kl;      // ½·mean (log p − log p_old)²
  double ratio_mean;
};

// One AWM optimiser step (docs/algorithms.md §7). Each sample is trained at K grid times, one drawn uniformly from
// each stratum [strata[k], strata[k + 1]) of grid indices (a stratum of one index is that index), with its own noise.
struct AwmStepOptions {
  uint64_t seed{};             // keys the draws of training times and noise (with the optimiser step)
  std::vector<double> times;   // the rollout grid without t = 0: the candidate times, by index
  std::vector<double> strata;  // K + 1 nondecreasing grid indices bounding the K strata
  int micro_batch{};           // (sample, time) rows per forward/backward, 0 = all
  int64_t first_sample{};      // index of sample 0 in the step's global batch (data-parallel), keys its draws
  AwmLossParams loss{};
  OptimizerConfig optimizer{};
};

struct AwmStepStats {
  StepStats step;
  AwmStats means;  // the row means of l, log q, the KL to the base and to the EMA anchor, over every rank
};

// One DGPO optimiser step (docs/algorithms.md §8). Every sample is trained at each of the M epoch times; the noise
// of a (group, time) pair is shared by the group's samples.
struct DgpoStepOptions {
  uint64_t seed{};            // keys the noise draws (with the optimiser step)
  std::vector<double> times;  // the M training times of the epoch
  int groups{};               // prompt groups of the step over every rank: group ids are in [0, groups)
  int micro_batch{};          // (sample, time) rows per forward/backward, 0 = all
  DgpoParams loss{};
  OptimizerConfig optimizer{};
};

struct DgpoStepStats {
  StepStats step;
  double clip_fraction;  // rows whose gradient the clip stopped, over every rank
  double weight_mean;    // mean of σ(S_g) over the rows
};

class Model {
 public:
  Model(Backend& backend, const NetConfig& config, uint64_t seed);

  const Network& net() const { return *net_; }
  Backend& backend() const { return backend_; }
  std::mutex& mutex() { return mutex_; }
  int64_t step() const { return step_; }

  // With adapters: whether the adapter set exists (the base θ always does).
  bool has_params(ParamSet which) const { return !(has_lora() ? adapters_ : sets_)[static_cast<int>(which)].empty(); }
  // The base set's buffer (with adapters only θ has one); throws kState when it does not exist yet.
  float* params(ParamSet which = ParamSet::kTheta) const;
  void get_params(float* host, ParamSet which = ParamSet::kTheta) const;
  void set_params(const float* host, ParamSet which = ParamSet::kTheta);  // creates the set if needed
  // With adapters, copy and blend act on the adapter sets.
  void copy_params(ParamSet dst, ParamSet src);  // creates dst if needed
  // dst ← η·dst + (1 − η)·src: the soft update of θ_old and the EMA.
  void blend_params(ParamSet dst, double eta, ParamSet src);

  // LoRA (core/lora.h, docs/lora.md). enable_lora freezes the base θ and trains a fresh adapter (A from `seed`):
  // it drops θ_old, θ_ref, the EMA and the optimiser state, and replaces any adapters. Throws kRange (nothing
  // changed) for a bad config.
  void enable_lora(const LoraConfig& config, uint64_t seed);
  bool has_lora() const { return net_->lora() != nullptr; }
  const LoraLayout& lora() const;  // throws kState without adapters
  void get_adapter(float* host, ParamSet which = ParamSet::kTheta) const;
  void set_adapter(const float* host, ParamSet which = ParamSet::kTheta);  // creates the set if needed
  // θ ← θ + (alpha/rank)·B·A with the trained adapter, then back to a plain model (adapter sets and optimiser
  // state dropped), as PEFT's merge_and_unload.
  void merge_lora();
  // Floats of what training updates: the adapter with LoRA, else θ; its gradient and AdamW moments have this size.
  size_t trained_count() const { return has_lora() ? lora().param_count() : net_->param_count(); }
  // Floats allocated for the gradient and the AdamW moments (for the tests of adapter-sized training state).
  size_t training_state_floats() const { return grads_.size() + m_.size() + v_.size(); }
  // Floats allocated for the parameter sets: θ (the frozen base with LoRA) plus every θ/θ_old/θ_ref/EMA set held.
  size_t parameter_set_floats() const {
    size_t n = 0;
    for (int i = 0; i < kParamSetCount; ++i) n += sets_[i].size() + adapters_[i].size();
    return n;
  }
  // AdamW moments; absent (false) until the first optimiser step or set_optimizer_state.
  bool has_optimizer_state() const { return !m_.empty(); }
  void get_optimizer_state(float* host_m, float* host_v) const;
  void set_optimizer_state(const float* host_m, const float* host_v, int64_t step);
  // Forgets the AdamW moments and the step count: the next step starts a new optimiser.
  void reset_optimizer();

  // out (B, D) = v(x, t, tokens) with the given parameters.
  void velocity(ParamSet which, const float* host_x, const float* host_t, const int32_t* host_tokens, int B,
                float* host_out);

  // For verification: out = v(x, t, tokens), then the gradients of Σ out·dout: host_dx (B, D) and host_grads (flat).
  void forward_backward(const float* host_x, const float* host_t, const int32_t* host_tokens, const float* host_dout,
                        int B, float* host_out, float* host_dx, float* host_grads);

  // A rollout with the given parameters (core/sampler.h): out (B, D), trajectory (N + 1, B, D) or null.
  void sample(ParamSet which, const float* host_noise, const int32_t* host_tokens, int B, const SampleOptions& options,
              float* host_out, float* host_trajectory, float* host_logp = nullptr, float* host_means = nullptr);

  // One DiffusionNFT optimiser step on clean samples x0 (B, D) of θ_old, their tokens (B, L) and optimality
  // probabilities r (B): v_θ, v_old (and v_ref) at K noised copies of each sample, the fused NFT loss, backward,
  // AdamW. Needs the 'old' parameter set (and 'ref' when the KL term is on).
  StepStats nft_step(const float* host_x0, const int32_t* host_tokens, const float* host_r, int B,
                     const NftStepOptions& options);

  // One AWM optimiser step on clean samples x0 (B, D) of θ, their tokens (B, L) and advantages (B): v_θ (and v_ref,
  // and v_ema from the 'old' set, the EMA anchor) at K noised copies of each sample, the fused AWM loss, backward,
  // AdamW. Needs 'ref' when the KL term is on and 'old' when the EMA term is.
  AwmStepStats awm_step(const float* host_x0, const int32_t* host_tokens, const float* host_advantages, int B,
                        const AwmStepOptions& options);

  // One DGPO optimiser step on clean samples x0 (B, D), their tokens (B, L), advantages (B) and group ids (B): the
  // rows' errors under θ, the base ('ref') and the fast EMA ('old'), the group weights σ(S_g) from sums over every
  // rank, the fused DGPO loss, backward, AdamW.
  DgpoStepStats dgpo_step(const float* host_x0, const int32_t* host_tokens, const float* host_advantages,
                          const int32_t* host_groups, int B, const DgpoStepOptions& options);

  // One FlowGRPO optimiser step on B recorded rollouts: trajectory (N + 1, B, D), tokens (B, L), advantages (B)
  // (clipped already), logp_old (N, B) as the rollout stored it. Needs 'ref' when the KL term is on.
  // With options.guard, host_means_old (N, B, D) holds the rollout's step means.
  GrpoStepStats grpo_step(const float* host_trajectory, const int32_t* host_tokens, const float* host_advantages,
                          const float* host_logp_old, int B, const GrpoStepOptions& options,
                          const float* host_means_old = nullptr);

  // Data parallelism (core/communicator.h): with a communicator each step's gradient, loss and statistics are those
  // of the rows of every rank together; B may then be 0 (a rank with no rows in this step still takes part).
  void set_communicator(std::shared_ptr<Communicator> communicator) { communicator_ = std::move(communicator); }
  bool distributed() const { return communicator_ != nullptr; }

  // One flow-matching optimiser step on clean samples x0 (B, D) with their condition tokens (B, L).
  StepStats flow_matching_step(const float* host_x0, const int32_t* host_tokens, int B,
                               const FlowMatchingOptions& options);

 private:
  // AdamW on the accumulated gradients of `rows` rows with mean loss `loss`, unless the loss is not finite (then
  // nothing changes). With a communicator, first the sums over the ranks: rows, loss, the GRPO statistics (in
  // place) and the gradient, each rank's weighted by its share of the rows.
  StepStats apply_step(double loss, double rows, const OptimizerConfig& optimizer, GrpoStats* grpo = nullptr);
  // The row loop of the forward-noising steps: row i is sample i / K at time host_times[i], noised with the draws
  // keyed by (seed, step, first_sample·K + i), carrying the sample's value (r or A) in r_. Per micro-batch: v_old_
  // (with `first`) and v_ref_ (with `second`) when given, θ's velocity in out_, then `loss(m, share)` writes dout_
  // and returns the micro-batch's mean loss, then the backward. Returns the mean loss over all rows.
  double noised_rows(const float* host_x0, const int32_t* host_tokens, const float* host_values, int B, int K,
                     const float* host_times, int micro_batch, uint64_t seed, int64_t first_sample, int64_t step,
                     const NetParams* first, const NetParams* second,
                     const std::function<double(int m, float share)>& loss);
  void stage_inputs(const float* host_x, const float* host_t, const int32_t* host_tokens, int B);
  // What a pass with the set reads, the buffer training updates (the adapter with LoRA) and its layout.
  NetParams weights(ParamSet which = ParamSet::kTheta) const;
  NetGrads gradients() const;
  float* trained(ParamSet which) const;
  const std::vector<ParamSpec>& trained_layout() const { return has_lora() ? lora().layout() : net_->layout(); }

  Backend& backend_;
  std::unique_ptr<Network> net_;  // not const: enable_lora and merge_lora attach and detach its adapters
  std::unique_ptr<NetWorkspace> workspace_;
  Sampler sampler_{backend_, *net_, *workspace_};
  Buffer<float> sets_[kParamSetCount];
  Buffer<float> adapters_[kParamSetCount];  // with LoRA
  Buffer<float> grads_, m_, v_;
  Buffer<float> update_backup_;  // θ, m and v during an AdamW step on a GPU (adamw_step)
  // Squared sums of the trained θ, m and v from the last AdamW step (adamw_step); emptied by whatever else writes them.
  std::optional<AdamWSums> update_sums_;
  Guidance guidance_;  // of grpo_step
  // staging for one batch
  Buffer<float> x_, xt_, t_, out_, target_, dout_, r_, v_old_, v_ref_, x_next_, keep_, mean_old_;
  Buffer<SdeRow> rows_;
  Buffer<int32_t> tokens_;
  int64_t step_ = 0;
  std::shared_ptr<Communicator> communicator_;
  std::mutex mutex_;
};

}  // namespace dnft
