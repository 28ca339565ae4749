// The DiffusionNFT loss of docs/algorithms.md §2.3, per element. With the target velocity v = eps − x0 and the
// implicit policies v+ = β·v_θ + (1 − β)·v_old and v− = (1 + β)·v_old − β·v_θ, the code's x0-space errors are
// x0± − x0 = −t·(v± − v), so everything follows from the velocity residuals v± − v:
//   row loss  (C/β)·[r·a+·mean(res+²) + (1 − r)·a−·mean(res−²)]
//   gradient  ∂/∂v_θ = (2C/D)·[r·a+·res+ − (1 − r)·a−·res−]      (∂res±/∂v_θ = ±β cancels 1/β)
// with C = adv_clip_max and a± = t²/w± for the adaptive weighting, w± = max(t·mean|res±|, 1e-5) held constant
// (stop-gradient), or a± = 1 for the plain velocity MSE. The CPU loop and the CUDA kernel share these functions.
#pragma once

#include <cmath>

#include "core/common.h"

namespace dnft {

struct NftLossParams {
  float beta{};          // guidance strength β (config.beta)
  float adv_clip_max{};  // C: the loss is scaled by C/β as in the code
  bool adaptive{};       // x0-space adaptive weighting (code default); false = velocity MSE of Eq. 5
  bool positive_only{};  // ablation: drop the negative term (r·L+ only), which the paper reports collapses
  float kl_coef{};       // weight of mean (v_θ − v_ref)², the code's KL to the reference (needs v_ref)
};

// Floor of the adaptive weights (the code's clamp), in x0 units.
constexpr double kNftWeightFloor = 1e-5;

struct NftResiduals {
  float pos;  // v+ − v
  float neg;  // v− − v
};

DNFT_HD NftResiduals nft_residuals(float v_theta, float v_old, float target, float beta) {
  const float v_pos = beta * v_theta + (1.0f - beta) * v_old;
  const float v_neg = (1.0f + beta) * v_old - beta * v_theta;
  return {v_pos - target, v_neg - target};
}

// The gradient of one element, given the row's coefficients g± = scale·(2C/D)/B·(r or 1 − r)·a±.
DNFT_HD float nft_grad(NftResiduals res, float g_pos, float g_neg, float kl_grad, float v_theta, float v_ref) {
  return g_pos * res.pos - g_neg * res.neg + kl_grad * (v_theta - v_ref);
}

// The sums of one row's first pass, in double.
struct NftRowSums {
  double abs_pos = 0, abs_neg = 0;  // Σ|res±|
  double sq_pos = 0, sq_neg = 0;    // Σ res±²
  double sq_kl = 0;                 // Σ (v_θ − v_ref)², when the KL term is on
};

DNFT_HD void nft_accumulate(NftRowSums* s, NftResiduals res, bool kl, float v_theta, float v_ref) {
  s->abs_pos += fabsf(res.pos);
  s->abs_neg += fabsf(res.neg);
  s->sq_pos += static_cast<double>(res.pos) * res.pos;
  s->sq_neg += static_cast<double>(res.neg) * res.neg;
  if (kl) {
    const double diff = static_cast<double>(v_theta) - v_ref;
    s->sq_kl += diff * diff;
  }
}

// A row's loss and the coefficients of its gradient (nft_grad), from its sums, time t, probability r, the row length
// D and the batch size B.
struct NftRowTerms {
  double loss;
  float g_pos, g_neg, kl_grad;
};

DNFT_HD NftRowTerms nft_row_terms(const NftRowSums& s, double t, double r, const NftLossParams& p, bool kl, int D,
                                  int B, float scale) {
  const double C = p.adv_clip_max, inv_D = 1.0 / D, inv_B = 1.0 / B;
  double a_pos = 1, a_neg = 1;
  if (p.adaptive) {
    const double w_pos = t * s.abs_pos * inv_D, w_neg = t * s.abs_neg * inv_D;
    a_pos = t * t / (w_pos < kNftWeightFloor ? kNftWeightFloor : w_pos);
    a_neg = t * t / (w_neg < kNftWeightFloor ? kNftWeightFloor : w_neg);
  }
  const double w_neg = p.positive_only ? 0.0 : 1.0 - r;
  const double g = scale * 2.0 * C * inv_D * inv_B;
  NftRowTerms terms;
  terms.loss = C / p.beta * (r * a_pos * s.sq_pos + w_neg * a_neg * s.sq_neg) * inv_D + p.kl_coef * s.sq_kl * inv_D;
  terms.g_pos = static_cast<float>(g * r * a_pos);
  terms.g_neg = static_cast<float>(g * w_neg * a_neg);
  terms.kl_grad = kl ? static_cast<float>(scale * 2.0 * p.kl_coef * inv_D * inv_B) : 0.0f;
  return terms;
}

}  // namespace dnft
