// One AdamW update of one parameter (Loshchilov & Hutter; decoupled weight decay, as torch.optim.AdamW).
#pragma once

#include <cmath>

#include "core/common.h"

namespace dnft {

struct AdamWStep {
  float lr;
  float beta1, beta2, eps;
  float weight_decay;      // 0 for parameters excluded from decay
  float bias_correction1;  // 1 - beta1^step
  float bias_correction2;  // 1 - beta2^step
  float grad_scale;        // multiplies the raw gradient (grad-norm clipping and accumulation averaging)
};

// Σθ², Σm² and Σv² after an update, in double: the next step's overflow check (core/optimizer.cpp) reads them instead
// of passing over the three buffers again.
struct AdamWSums {
  double param = 0.0, m = 0.0, v = 0.0;
  AdamWSums& operator+=(const AdamWSums& o) {
    param += o.param;
    m += o.m;
    v += o.v;
    return *this;
  }
};

DNFT_HD void adamw_update(float* param, float* m, float* v, float raw_grad, const AdamWStep& s) {
  const float g = raw_grad * s.grad_scale;
  *m = s.beta1 * *m + (1.0f - s.beta1) * g;
  *v = s.beta2 * *v + (1.0f - s.beta2) * g * g;
  const float m_hat = *m / s.bias_correction1;
  const float v_hat = *v / s.bias_correction2;
  *param -= s.lr * (m_hat / (sqrtf(v_hat) + s.eps) + s.weight_decay * *param);
}

}  // namespace dnft
