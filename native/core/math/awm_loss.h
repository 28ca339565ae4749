// The AWM loss of docs/algorithms.md §7 (advantage-weighted flow matching), per row of D elements. With the row's
// flow-matching error l = mean_d (v_θ − v)², v = eps − x0, a weighting log q(l, t) and the advantage A:
//   row loss   −A·ratio + kl·mean_d (v_θ − v_ref)² + ema·mean_d (v_θ − v_ema)²,   ratio = exp(log q − sg(log q)) = 1
//   gradient   ∂/∂v_θ = (2/D)·[−A·q'(l)·(v_θ − v) + kl·(v_θ − v_ref) + ema·(v_θ − v_ema)]
// where q'(l) = ∂ log q/∂l. The rollouts are on-policy, so the ratio is exactly 1 and the PPO clip of the official
// code never acts; the loss value is then −A plus the two penalties. The CPU loop and the CUDA kernel share these.
#pragma once

#include <cmath>

#include "core/common.h"

namespace dnft {

// log q(l, t) of the official `weighting` option.
enum class AwmWeighting : int {
  kGhuber = 0,   // −(t/p)·((l + δ)^p − δ^p), δ = 1e-10 (the official default, p = 0.25)
  kUniform = 1,  // −l
  kT = 2,        // −t·l
  kT2 = 3,       // −t²·l
  kHuber = 4,    // −t·(√(l + 1e-10) − 1e-5)
};

struct AwmLossParams {
  AwmWeighting weighting{AwmWeighting::kGhuber};
  float power{};     // p of the ghuber weighting
  float kl_coef{};   // weight of mean (v_θ − v_ref)², the KL to the base (needs v_ref)
  float ema_coef{};  // weight of mean (v_θ − v_ema)², the KL to the EMA anchor (needs v_ema)
};

constexpr double kAwmDelta = 1e-10;

// log q and its derivative with respect to l.
struct AwmLogQ {
  double value, slope;
};

DNFT_HD AwmLogQ awm_log_q(double l, double t, const AwmLossParams& p) {
  switch (p.weighting) {
    case AwmWeighting::kGhuber: {
      const double q = p.power;
      return {-(t / q) * (pow(l + kAwmDelta, q) - pow(kAwmDelta, q)), -t * pow(l + kAwmDelta, q - 1.0)};
    }
    case AwmWeighting::kUniform:
      return {-l, -1.0};
    case AwmWeighting::kT:
      return {-t * l, -t};
    case AwmWeighting::kT2:
      return {-t * t * l, -t * t};
    case AwmWeighting::kHuber:
    default: {
      const double root = sqrt(l + 1e-10);
      return {-t * (root - 1e-5), -t / (2.0 * root)};
    }
  }
}

// The sums of one row's first pass, in double.
struct AwmRowSums {
  double sq = 0;      // Σ (v_θ − v)²
  double sq_kl = 0;   // Σ (v_θ − v_ref)²
  double sq_ema = 0;  // Σ (v_θ − v_ema)²
};

DNFT_HD void awm_accumulate(AwmRowSums* s, float v_theta, float target, float v_ref, float v_ema) {
  const double fm = static_cast<double>(v_theta) - target, kl = static_cast<double>(v_theta) - v_ref,
               ema = static_cast<double>(v_theta) - v_ema;
  s->sq += fm * fm;
  s->sq_kl += kl * kl;
  s->sq_ema += ema * ema;
}

// A row's loss, statistics and gradient coefficients, from its sums, time t and advantage A, for a batch of B rows
// whose gradient is scaled by `scale`.
struct AwmRowTerms {
  double loss;
  double fm;     // l
  double log_q;  // log q(l, t)
  double kl;     // mean_d (v_θ − v_ref)² (0 when off)
  double ema;    // mean_d (v_θ − v_ema)² (0 when off)
  float g_fm, g_kl, g_ema;
};

DNFT_HD AwmRowTerms awm_row_terms(const AwmRowSums& s, double t, double advantage, const AwmLossParams& p, bool kl,
                                  bool ema, int D, int B, float scale) {
  const double inv_D = 1.0 / D, g = scale * 2.0 * inv_D / B;
  AwmRowTerms r;
  r.fm = s.sq * inv_D;
  const AwmLogQ q = awm_log_q(r.fm, t, p);
  r.log_q = q.value;
  r.kl = kl ? s.sq_kl * inv_D : 0.0;
  r.ema = ema ? s.sq_ema * inv_D : 0.0;
  r.loss = -advantage + p.kl_coef * r.kl + p.ema_coef * r.ema;
  r.g_fm = static_cast<float>(-g * advantage * q.slope);
  r.g_kl = kl ? static_cast<float>(g * p.kl_coef) : 0.0f;
  r.g_ema = ema ? static_cast<float>(g * p.ema_coef) : 0.0f;
  return r;
}

DNFT_HD float awm_grad(const AwmRowTerms& r, float v_theta, float target, float v_ref, float v_ema) {
  return r.g_fm * (v_theta - target) + r.g_kl * (v_theta - v_ref) + r.g_ema * (v_theta - v_ema);
}

// The statistics of a batch, summed over its rows.
struct AwmStats {
  double fm = 0, log_q = 0, kl = 0, ema = 0;
};

// The batch loss, the mean of the rows' in row order (both backends), adding the rows' statistics to *stats.
inline double sum_awm_rows(const AwmRowTerms* rows, int B, AwmStats* stats) {
  double loss = 0;
  for (int b = 0; b < B; ++b) {
    loss += rows[b].loss;
    if (stats != nullptr) {
      stats->fm += rows[b].fm;
      stats->log_q += rows[b].log_q;
      stats->kl += rows[b].kl;
      stats->ema += rows[b].ema;
    }
  }
  return B > 0 ? loss / B : 0.0;
}

}  // namespace dnft
