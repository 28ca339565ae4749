// FlowGRPO's reverse-time SDE (docs/algorithms.md §3.2–3.4): the Euler–Maruyama step that keeps the ODE's marginals,
// its per-step Gaussian log-probability, and the PPO-clipped objective, per element. The CPU loops and the CUDA
// kernels share these functions; the per-step coefficients are computed once on the host in double.
#pragma once

#include <cmath>

#include "core/common.h"
#include "core/math/lincomb.h"

namespace dnft {

// One step from t to t_next < t: mean = x_coef·x + v_coef·v, x_next = mean + std·z with z ~ N(0, I).
struct SdeCoefficients {
  double x_coef;
  double v_coef;
  double sigma;  // σ_t = a·√(t/(1 − t)), the diffusion coefficient (the KL term divides by σ_t²)
  double std;    // σ_t·√(t − t_next), the step's standard deviation
};

// dx = [v + σ²/(2t)·(x + (1 − t)·v)]·dt + σ·dw with signed dt = t_next − t. At t = 1 the code replaces the
// 1 − t of σ by 1 − t_first (t_first: the grid's second time), which keeps σ finite.
inline SdeCoefficients sde_coefficients(double t, double t_next, double a, double t_first) {
  const double dt = t_next - t;
  const double sigma = a * std::sqrt(t / (1.0 - (t == 1.0 ? t_first : t)));
  const double k = sigma * sigma / (2.0 * t);
  return {1.0 + k * dt, (1.0 + k * (1.0 - t)) * dt, sigma, sigma * std::sqrt(-dt)};
}

// The same expression as the sampler's lincomb, so the rollout and the training step get identical means.
DNFT_HD float sde_mean(float x, float v, float x_coef, float v_coef) { return lincomb2(x_coef, x, v_coef, v); }

// log N(x; mean, std²) of one element, in float32 as the code computes it.
DNFT_HD float gaussian_logp(float x, float mean, float std) {
  const float d = x - mean;
  return -(d * d) / (2.0f * std * std) - logf(std) - 0.91893853320467274f;  // log √(2π)
}

// Per-row coefficients of a training transition, as floats (what the kernels read).
struct SdeRow {
  float x_coef, v_coef, std, sigma;
};

struct GrpoParams {
  float clip_range{};  // ε of the PPO clip on the ratio (the code's; re-tune for small D: docs/algorithms.md §3.4)
  float kl_coef{};     // β_KL of mean_dims (mean_θ − mean_ref)²/(2σ_t²) (needs v_ref)
  bool logp_sum{};     // sum the per-dimension log-probabilities instead of the code's mean
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

// The per-row factors of the GRPO gradient: ∂logp/∂mean_d = (x_next − mean)/std² (/D for the mean),
// ∂KL/∂mean_d = β_KL·(mean − mean_ref)/(σ²·D), and ∂mean/∂v = v_coef with the loss scale and the 1/R of the mean.
struct GrpoRowCoefs {
  float g_logp, g_kl, to_v;
};

DNFT_HD GrpoRowCoefs grpo_row_coefs(const PpoTerm& ppo, const SdeRow& c, const GrpoParams& p, bool kl, int D, int R,
                                    float scale) {
  GrpoRowCoefs k;
  k.g_logp = static_cast<float>(ppo.dlogp / (static_cast<double>(c.std) * c.std) / (p.logp_sum ? 1 : D));
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
