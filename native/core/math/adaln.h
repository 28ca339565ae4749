// Layer norm without affine parameters followed by the adaLN modulation n·(1 + scale) + shift, and DiT's gated
// residual h + gate·y, per element; the row statistics are summed in double by the caller. The CPU loops and the
// CUDA kernels share these functions. A plain layer norm is the modulation with scale = shift = 0.
#pragma once

#include <cmath>

#include "core/common.h"

namespace dnft {

constexpr float kLayerNormEps = 1e-6f;

// 1/√(var + eps) from the row's centred sum of squares.
DNFT_HD float layer_norm_rstd(double centered_sq_sum, int W) {
  return static_cast<float>(1.0 / sqrt(centered_sq_sum / W + kLayerNormEps));
}

DNFT_HD float adaln_modulate(float n, float scale, float shift) { return n * (1.0f + scale) + shift; }

// d/dn of the modulation: dy·(1 + scale).
DNFT_HD float adaln_dn(float dy, float scale) { return dy * (1.0f + scale); }

// din of an element from the row means of dn and dn·n: r·(dn − mean(dn) − n·mean(dn·n)).
DNFT_HD float adaln_dx(float dn, float n, float rstd, float dn_mean, float dn_n_mean) {
  return rstd * (dn - dn_mean - n * dn_n_mean);
}

// One token's terms of the modulation's gradient, which sums over the sample's tokens: dscale += dy·n with the
// normalised input n = (x − mean)·rstd, dshift += dy.
DNFT_HD void adaln_modulation_grad(float& dscale, float& dshift, float dy, float x, float mean, float rstd) {
  dscale += dy * (x - mean) * rstd;
  dshift += dy;
}

DNFT_HD float gated_residual(float h, float gate, float y) { return h + gate * y; }

}  // namespace dnft
