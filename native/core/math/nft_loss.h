// The DiffusionNFT loss of algorithms.md section 2.3, per element. With the target velocity v = eps − x0 and the
// implicit policies v+ = β·v_θ + (1 − β)·v_old and v− = (1 + β)·v_old − β·v_θ, the code's x0-space errors are
// x0± − x0 = −t·(v± − v), so everything follows from the velocity residuals v± − v:
//   row loss  (C/β)·[r·a+·mean(res+²) + (1 − r)·a−·mean(res−²)]
//   gradient  ∂/∂v_θ = (2C/D)·[r·a+·res+ − (1 − r)·a−·res−]      (∂res±/∂v_θ = ±β cancels 1/β)
// with C = adv_clip_max and a± = t²/w± for the adaptive weighting, w± = max(t·mean|res±|, 1e-5) held constant
// (stop-gradient), or a± = 1 for the plain velocity MSE. The CPU loop and the CUDA kernel share these functions.
#pragma once

#include "core/common.h"

namespace dnft {

struct NftLossParams {
  float beta = 1.0f;           // guidance strength β (config.beta)
  float adv_clip_max = 5.0f;   // C: the loss is scaled by C/β as in the code
  bool adaptive = true;        // x0-space adaptive weighting (code default); false = velocity MSE of Eq. 5
  bool positive_only = false;  // ablation: drop the negative term (r·L+ only), which the paper reports collapses
  float kl_coef = 0.0f;        // weight of mean (v_θ − v_ref)², the code's KL to the reference (needs v_ref)
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

}  // namespace dnft
