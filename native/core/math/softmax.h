// Row softmax and its backward, the core of attention (cpu/attention.cpp): one row of n logits at a time.
#pragma once

#include <cmath>

#include "core/common.h"

namespace dnft {

// row ← softmax(row), stable for any finite logits: the row maximum is subtracted before exp.
DNFT_HD void softmax_row(float* row, int n) {
  float max = row[0];
  for (int i = 1; i < n; ++i) max = fmaxf(max, row[i]);
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    row[i] = expf(row[i] - max);
    sum += row[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) row[i] *= inv;
}

// dlogits ← p ⊙ (dp − Σ_j p_j·dp_j) for p = softmax(logits); dlogits may be dp.
DNFT_HD void softmax_row_backward(float* dlogits, const float* dp, const float* p, int n) {
  float dot = 0.0f;
  for (int i = 0; i < n; ++i) dot += p[i] * dp[i];
  for (int i = 0; i < n; ++i) dlogits[i] = p[i] * (dp[i] - dot);
}

}  // namespace dnft
