// SiLU and GELU (tanh approximation) and their derivatives, shared by the CPU loops and the CUDA kernels.
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

// gelu(z) = z/2 · (1 + tanh(√(2/π)·(z + 0.044715 z³))), PyTorch's approximate='tanh' and DiT's.
constexpr float kGeluC = 0.7978845608028654f;  // √(2/π)
constexpr float kGeluA = 0.044715f;

DNFT_HD float gelu(float z) { return 0.5f * z * (1.0f + tanhf(kGeluC * (z + kGeluA * z * z * z))); }

DNFT_HD float gelu_grad(float z) {
  const float th = tanhf(kGeluC * (z + kGeluA * z * z * z));
  return 0.5f * (1.0f + th) + 0.5f * z * (1.0f - th * th) * kGeluC * (1.0f + 3.0f * kGeluA * z * z);
}

}  // namespace dnft
