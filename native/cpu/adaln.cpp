// Layer norm without affine parameters, followed by adaLN modulation n·(1 + scale) + shift.
#include "core/math/adaln.h"

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

void adaln_forward(float* out, float* mean, float* rstd, const float* in, const float* mod, int B, int W) {
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const float* x = in + b * W;
      double sum = 0.0, sum_sq = 0.0;
      for (int w = 0; w < W; ++w) sum += x[w];
      const double mu = sum / W;
      for (int w = 0; w < W; ++w) sum_sq += (x[w] - mu) * (x[w] - mu);
      const float r = layer_norm_rstd(sum_sq, W);
      mean[b] = static_cast<float>(mu);
      rstd[b] = r;
      float* y = out + b * W;
      const float* mod_row = mod != nullptr ? mod + b * 2 * W : nullptr;
      for (int w = 0; w < W; ++w) y[w] = adaln_output(x[w], mean[b], r, mod_row, W, w);
    }
  });
}

void adaln_backward(float* din, float* dmod, const float* dout, const float* in, const float* mean, const float* rstd,
                    const float* mod, int B, int W) {
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const float* x = in + b * W;
      const float* dy = dout + b * W;
      const float* scale = mod != nullptr ? mod + b * 2 * W : nullptr;
      const float mu = mean[b], r = rstd[b];
      // dn = dy·(1 + scale); din = r·(dn - mean(dn) - n·mean(dn·n)) with n the normalised input.
      double dn_sum = 0.0, dn_n_sum = 0.0;
      for (int w = 0; w < W; ++w) {
        const float n = (x[w] - mu) * r;
        const float dn = adaln_dn(dy[w], scale, w);
        dn_sum += dn;
        dn_n_sum += static_cast<double>(dn) * n;
      }
      const float dn_mean = static_cast<float>(dn_sum / W), dn_n_mean = static_cast<float>(dn_n_sum / W);
      float* dx = din + b * W;
      for (int w = 0; w < W; ++w) {
        const float n = (x[w] - mu) * r;
        dx[w] += adaln_dx(adaln_dn(dy[w], scale, w), n, r, dn_mean, dn_n_mean);
      }
      if (dmod != nullptr) {
        float* dscale = dmod + b * 2 * W;
        float* dshift = dscale + W;
        for (int w = 0; w < W; ++w) {
          dscale[w] = dy[w] * (x[w] - mu) * r;
          dshift[w] = dy[w];
        }
      }
    }
  });
}

}  // namespace dnft::cpu
