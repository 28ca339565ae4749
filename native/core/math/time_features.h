// Sinusoidal time features of the velocity network (docs/network.md), per element: the CPU loop and the CUDA kernel
// share this function.
#pragma once

#include <cmath>

#include "core/common.h"

namespace dnft {

// Feature j of a row with time t among F = 2·half features: cos(1000·t·f_k) for j = k < half, sin(1000·t·f_k) for
// j = half + k, with f_k = 10000^(−k/half).
DNFT_HD float time_feature(float t, int j, int half) {
  const int k = j < half ? j : j - half;
  const float freq = expf(-logf(10000.0f) * static_cast<float>(k) / static_cast<float>(half));
  const float arg = 1000.0f * t * freq;
  return j < half ? cosf(arg) : sinf(arg);
}

}  // namespace dnft
