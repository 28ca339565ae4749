// The stochastic steps of the likelihood methods (docs/algorithms.md §3.2–3.4, §9): FlowGRPO's Euler–Maruyama
// step that keeps the ODE's marginals and CPS's coefficient-preserving step, their per-step log-probabilities, the
// PPO-clipped objective, and GRPO-Guard's normalised ratio, per element. The CPU loops and the CUDA kernels share
// these functions; the per-step coefficients are computed once on the host in double.
#pragma once

#include <cmath>

#include "core/common.h"
#include "core/math/lincomb.h"

namespace dnft {

// Which stochastic step: FlowGRPO's SDE (Gaussian log-density) or CPS (the code's log p = −mean_d (x' − mean)²).
enum class SdeKind { kFlowGrpo, kCps };

// One step from t to t_next < t: mean = x_coef·x + v_coef·v, x_next = mean + std·z with z ~ N(0, I).
struct SdeCoefficients {
  double x_coef;
  double v_coef;
  double sigma;  // the KL term's divisor: σ_t = a·√(t/(1 − t)) for FlowGRPO, the step's std for CPS (flow_grpo's)
  double std;    // the step's standard deviation: σ_t·√(t − t_next), or t_next·sin(aπ/2) for CPS
};

// dx = [v + σ²/(2t)·(x + (1 − t)·v)]·dt + σ·dw with signed dt = t_next − t. At t = 1 the code replaces the
// 1 − t of σ by 1 − t_first (t_first: the grid's second time), which keeps σ finite.
inline SdeCoefficients sde_coefficients(double t, double t_next, double a, double t_first) {
  const double dt = t_next - t;
  const double sigma = a * std::sqrt(t / (1.0 - (t == 1.0 ? t_first : t)));
  const double k = sigma * sigma / (2.0 * t);
  return {1.0 + k * dt, (1.0 + k * (1.0 - t)) * dt, sigma, sigma * std::sqrt(-dt)};
}

// CPS: mean = (1 − t_next)·x̂0 + t_next·cos(aπ/2)·ε̂ with x̂0 = x − t·v and ε̂ = x + (1 − t)·v, std = t_next·sin(aπ/2).
// Expanded into the same x_coef·x + v_coef·v as the SDE, so the sampler and the losses share one mean.
inline SdeCoefficients cps_coefficients(double t, double t_next, double a) {
  const double half_pi_a = a * 1.5707963267948966;
  const double c = t_next * std::cos(half_pi_a), std = t_next * std::sin(half_pi_a);
  return {(1.0 - t_next) + c, -(1.0 - t_next) * t + c * (1.0 - t), std, std};
}

inline SdeCoefficients step_coefficients(SdeKind kind, double t, double t_next, double a, double t_first) {
  return kind == SdeKind::kCps ? cps_coefficients(t, t_next, a) : sde_coefficients(t, t_next, a, t_first);
}

// The same expression as the sampler's lincomb, so the rollout and the training step get identical means.
DNFT_HD float sde_mean(float x, float v, float x_coef, float v_coef) { return lincomb2(x_coef, x, v_coef, v); }

// log N(x; mean, std²) of one element, in float32 as the code computes it.
DNFT_HD float gaussian_logp(float x, float mean, float std) {
  const float d = x - mean;
  return -(d * d) / (2.0f * std * std) - logf(std) - 0.91893853320467274f;  // log √(2π)
}

// One element's log-probability term of the step: Gaussian for FlowGRPO, −(x − mean)² for CPS (every constant
// dropped, as the CPS code).
DNFT_HD float step_logp(float x, float mean, float std, bool cps) {
  const float d = x - mean;
  return cps ? -(d * d) : gaussian_logp(x, mean, std);
}

// Per-row coefficients of a training transition, as floats (what the kernels read); dt = t_next − t < 0.
struct SdeRow {
  float x_coef, v_coef, std, sigma, dt;
};

inline SdeRow sde_row(const SdeCoefficients& k, double dt) {
  return {static_cast<float>(k.x_coef), static_cast<float>(k.v_coef), static_cast<float>(k.std),
          static_cast<float>(k.sigma), static_cast<float>(dt)};
}

struct GrpoParams {
  float clip_range{};  // ε of the PPO clip on the ratio (the code's; re-tune for small D: docs/algorithms.md §3.4)
  float kl_coef{};     // β_KL of mean_dims (mean_θ − mean_ref)²/(2σ_t²) (needs v_ref)
  bool logp_sum{};     // sum the per-dimension log-probabilities instead of the code's mean
  bool cps{};          // the rows are CPS steps (their log p and its gradient: step_logp)
};

// The PPO term of one row, max(−A·ratio, −A·clip(ratio, 1 − ε, 1 + ε)), and its derivative in log p.
struct PpoTerm {
  float loss;
  float dlogp;
  bool clipped;  // |ratio − 1| > ε
};

DNFT_HD PpoTerm ppo_term(float logp, float logp_old, float advantage, float clip_range) {
  const float ratio = expf(logp - logp_old);
  const float low = 1.0f - clip_range, high = 1.0f + clip_range;
  const float clamped = fminf(fmaxf(ratio, low), high);
  const float unclipped = -advantage * ratio, clipped = -advantage * clamped;
  // Inside the clip both branches carry the gradient −A·ratio; outside, only the unclipped one when it is larger.
  const bool inside = ratio > low && ratio < high;
  const float dlogp = inside || unclipped > clipped ? -advantage * ratio : 0.0f;
  return {fmaxf(unclipped, clipped), dlogp, !(ratio >= low && ratio <= high)};
}

// The log-probability of a row from the double sum of its per-element terms: the mean (or sum) as float, the value
// the rollout stores as log p_old and the training step recomputes.
DNFT_HD float sde_row_logp(double acc, int D, bool sum) { return static_cast<float>(sum ? acc : acc / D); }

// The per-row factors of the GRPO gradient: ∂logp/∂mean_d = (x_next − mean)/std² (CPS: 2·(x_next − mean)) (/D for the
// mean), ∂KL/∂mean_d = β_KL·(mean − mean_ref)/(σ²·D), and ∂mean/∂v = v_coef with the loss scale and the 1/R of the
// mean.
struct GrpoRowCoefs {
  float g_logp, g_kl, to_v;
};

DNFT_HD GrpoRowCoefs grpo_row_coefs(const PpoTerm& ppo, const SdeRow& c, const GrpoParams& p, bool kl, int D, int R,
                                    float scale) {
  GrpoRowCoefs k;
  const double per_diff = p.cps ? 2.0 : 1.0 / (static_cast<double>(c.std) * c.std);
  k.g_logp = static_cast<float>(ppo.dlogp * per_diff / (p.logp_sum ? 1 : D));
  k.g_kl = kl ? static_cast<float>(p.kl_coef / (static_cast<double>(c.sigma) * c.sigma) / D) : 0.0f;
  k.to_v = scale * c.v_coef / static_cast<float>(R);
  return k;
}

// The gradient of one element and its KL difference mean − mean_ref (0 without the KL term).
struct GrpoElement {
  float dv;
  float kl_diff;
};

DNFT_HD GrpoElement grpo_element(float x, float x_next, float v, float v_ref, const SdeRow& c, const GrpoRowCoefs& k,
                                 bool kl) {
  const float mean = sde_mean(x, v, c.x_coef, c.v_coef);
  float g = k.g_logp * (x_next - mean);
  float diff = 0.0f;
  if (kl) {
    diff = mean - sde_mean(x, v_ref, c.x_coef, c.v_coef);
    g += k.g_kl * diff;
  }
  return {k.to_v * g, diff};
}

// One row's contribution to the loss and the statistics.
struct GrpoRowResult {
  double loss;
  double ratio, log_ratio;
  int clipped;
};

DNFT_HD GrpoRowResult grpo_row_result(const PpoTerm& ppo, float logp, float logp_old, double kl_sum, const SdeRow& c,
                                      const GrpoParams& p, bool kl, int D) {
  const double kl_term = kl ? p.kl_coef * kl_sum / D / (2.0 * c.sigma * c.sigma) : 0.0;
  const double log_ratio = static_cast<double>(logp) - logp_old;
  return {ppo.loss + kl_term, exp(log_ratio), log_ratio, ppo.clipped ? 1 : 0};
}

// GRPO-Guard's RatioNorm (docs/algorithms.md §9.4): log ρ_G = (log p − log p_old + b)·std with the bias
// b = mean_d (mean − mean_old)²/(2·std²) from the rollout's stored step mean (summed like log p with logp_sum).
DNFT_HD float guard_log_ratio(float logp, float logp_old, double bias_sum, const SdeRow& c, bool sum, int D) {
  const double b = bias_sum / (sum ? 1 : D) / (2.0 * c.std * c.std);
  return static_cast<float>((static_cast<double>(logp) - logp_old + b) * c.std);
}

// The factor of (x_next − mean_old) in GRPO-Guard's gradient with respect to v: ∂log ρ_G/∂mean_d =
// (x_next − mean_old)/(std·D) (the bias cancels the −mean of log p), ∂mean/∂v = v_coef, the per-step weight 1/|dt|,
// the loss scale and the 1/R of the mean.
DNFT_HD float guard_to_v(const PpoTerm& ppo, const SdeRow& c, bool sum, int D, int R, float scale) {
  const double per_mean = ppo.dlogp / (static_cast<double>(c.std) * (sum ? 1 : D));
  return static_cast<float>(per_mean * c.v_coef * scale / R / -c.dt);
}

// One row of GRPO-Guard: the PPO term weighted by 1/|dt|, and the normalised ratio's statistics.
DNFT_HD GrpoRowResult guard_row_result(const PpoTerm& ppo, float log_ratio, const SdeRow& c) {
  return {ppo.loss / -static_cast<double>(c.dt), exp(static_cast<double>(log_ratio)), log_ratio, ppo.clipped ? 1 : 0};
}

struct GrpoStats {
  double clipped = 0;       // rows with |ratio − 1| > ε
  double ratio_sum = 0;     // Σ ratio
  double log_ratio_sq = 0;  // Σ (log p − log p_old)², for the approximate KL ½·mean
};

// The mean loss over R rows, summed in row order on the host (both backends, so the sum is reproducible), adding
// the rows' statistics to *stats when not null.
inline double sum_grpo_rows(const GrpoRowResult* rows, int R, GrpoStats* stats) {
  double loss = 0;
  for (int r = 0; r < R; ++r) {
    loss += rows[r].loss;
    if (stats != nullptr) {
      stats->clipped += rows[r].clipped;
      stats->ratio_sum += rows[r].ratio;
      stats->log_ratio_sq += rows[r].log_ratio * rows[r].log_ratio;
    }
  }
  return loss / R;
}

}  // namespace dnft
