// SiLU and its derivative, shared by the CPU loops and the CUDA kernels.
#pragma once

#include <cmath>

#include "core/common.h"

namespace dnft {

DNFT_HD float silu(float z) { return z / (1.0f + expf(-z)); }

// d silu(z) / dz = s (1 + z (1 - s)) with s = sigmoid(z).
DNFT_HD float silu_grad(float z) {
  const float s = 1.0f / (1.0f + expf(-z));
  return s * (1.0f + z * (1.0f - s));
}

}  // namespace dnft
