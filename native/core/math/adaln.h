// Layer norm without affine parameters followed by the adaLN modulation n·(1 + scale) + shift, per element; the row
// statistics are summed in double by the caller. The CPU loop and the CUDA kernel share these functions.
#pragma once

#include <cmath>

#include "core/common.h"

namespace dnft {

constexpr float kLayerNormEps = 1e-6f;

// 1/√(var + eps) from the row's centred sum of squares.
DNFT_HD float layer_norm_rstd(double centered_sq_sum, int W) {
  return static_cast<float>(1.0 / sqrt(centered_sq_sum / W + kLayerNormEps));
}

// Output w of a row; mod_row (2W: [scale | shift]) null means plain layer norm.
DNFT_HD float adaln_output(float x, float mean, float rstd, const float* mod_row, int W, int w) {
  if (mod_row == nullptr) return (x - mean) * rstd;
  return (x - mean) * rstd * (1.0f + mod_row[w]) + mod_row[W + w];
}

// d/dn of element w: dy·(1 + scale).
DNFT_HD float adaln_dn(float dy, const float* mod_row, int w) {
  return mod_row != nullptr ? dy * (1.0f + mod_row[w]) : dy;
}

// din of element w from the row means of dn and dn·n: r·(dn − mean(dn) − n·mean(dn·n)).
DNFT_HD float adaln_dx(float dn, float n, float rstd, float dn_mean, float dn_n_mean) {
  return rstd * (dn - dn_mean - n * dn_n_mean);
}

}  // namespace dnft
