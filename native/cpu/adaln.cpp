// adaLN-Zero: layer norm without affine parameters followed by the modulation n·(1 + scale) + shift, and the gated
// residual h + gate·y. A sample's modulation row is shared by its T tokens.
#include "core/math/adaln.h"

#include <cmath>

#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

void CpuBackend::modulated_norm_forward(float* out, float* mean, float* rstd, const float* in, const float* scale,
                                        const float* shift, int B, int T, int W, int mod_stride) {
  global_pool().parallel_for(static_cast<int64_t>(B) * T, [&](int64_t begin, int64_t end, int) {
    for (int64_t row = begin; row < end; ++row) {
      const float* x = in + row * W;
      double sum = 0.0, sum_sq = 0.0;
      for (int w = 0; w < W; ++w) sum += x[w];
      const double mu = sum / W;
      for (int w = 0; w < W; ++w) sum_sq += (x[w] - mu) * (x[w] - mu);
      const float r = layer_norm_rstd(sum_sq, W);
      mean[row] = static_cast<float>(mu);
      rstd[row] = r;
      float* y = out + row * W;
      if (scale == nullptr) {
        for (int w = 0; w < W; ++w) y[w] = (x[w] - mean[row]) * r;
      } else {
        const int64_t m = row / T * mod_stride;
        for (int w = 0; w < W; ++w) y[w] = adaln_modulate((x[w] - mean[row]) * r, scale[m + w], shift[m + w]);
      }
    }
  });
}

void CpuBackend::modulated_norm_backward(float* din, float* dscale, float* dshift, const float* dout, const float* in,
                                         const float* mean, const float* rstd, const float* scale, int B, int T, int W,
                                         int mod_stride) {
  global_pool().parallel_for(static_cast<int64_t>(B) * T, [&](int64_t begin, int64_t end, int) {
    for (int64_t row = begin; row < end; ++row) {
      const float* x = in + row * W;
      const float* dy = dout + row * W;
      const float* s = scale != nullptr ? scale + row / T * mod_stride : nullptr;
      const float mu = mean[row], r = rstd[row];
      // dn = dy·(1 + scale); din = r·(dn - mean(dn) - n·mean(dn·n)) with n the normalised input.
      double dn_sum = 0.0, dn_n_sum = 0.0;
      for (int w = 0; w < W; ++w) {
        const float n = (x[w] - mu) * r;
        const float dn = adaln_dn(dy[w], s != nullptr ? s[w] : 0.0f);
        dn_sum += dn;
        dn_n_sum += static_cast<double>(dn) * n;
      }
      const float dn_mean = static_cast<float>(dn_sum / W), dn_n_mean = static_cast<float>(dn_n_sum / W);
      float* dx = din + row * W;
      for (int w = 0; w < W; ++w) {
        const float n = (x[w] - mu) * r;
        dx[w] += adaln_dx(adaln_dn(dy[w], s != nullptr ? s[w] : 0.0f), n, r, dn_mean, dn_n_mean);
      }
    }
  });
  if (dscale == nullptr) return;
  // The modulation's gradient sums over the sample's tokens: parallel over samples, so rows never collide.
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      float* ds = dscale + b * mod_stride;
      float* dsh = dshift + b * mod_stride;
      for (int w = 0; w < W; ++w) ds[w] = dsh[w] = 0.0f;
      for (int64_t row = b * T; row < (b + 1) * T; ++row) {
        const float* x = in + row * W;
        const float* dy = dout + row * W;
        for (int w = 0; w < W; ++w) adaln_modulation_grad(ds[w], dsh[w], dy[w], x[w], mean[row], rstd[row]);
      }
    }
  });
}

void CpuBackend::gated_residual_forward(float* out, const float* h, const float* y, const float* gate, int B, int T,
                                        int W, int mod_stride) {
  global_pool().parallel_for(static_cast<int64_t>(B) * T, [&](int64_t begin, int64_t end, int) {
    for (int64_t row = begin; row < end; ++row) {
      const float* g = gate + row / T * mod_stride;
      for (int w = 0; w < W; ++w) out[row * W + w] = gated_residual(h[row * W + w], g[w], y[row * W + w]);
    }
  });
}

void CpuBackend::gated_residual_backward(float* dy, float* dgate, const float* dout, const float* y, const float* gate,
                                         int B, int T, int W, int mod_stride) {
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const float* g = gate + b * mod_stride;
      float* dg = dgate + b * mod_stride;
      for (int w = 0; w < W; ++w) dg[w] = 0.0f;
      for (int64_t row = b * T; row < (b + 1) * T; ++row) {
        for (int w = 0; w < W; ++w) {
          dy[row * W + w] = g[w] * dout[row * W + w];
          dg[w] += dout[row * W + w] * y[row * W + w];
        }
      }
    }
  });
}

}  // namespace dnft::cpu
