// Layer norm + adaLN modulation: one block per row, row statistics in double by block reduction
// (core/math/adaln.h holds the per-element math shared with the CPU).
#include "core/math/adaln.h"
#include "cuda/ops.cuh"
#include "cuda/reduce.cuh"

namespace dnft::cuda {

namespace {

__global__ void __launch_bounds__(kRowThreads)
    adaln_forward_kernel(float* out, float* mean, float* rstd, const float* in, const float* mod, int W) {
  const size_t b = blockIdx.x;
  const float* x = in + b * W;
  double sum = 0.0;
  for (int w = threadIdx.x; w < W; w += kRowThreads) sum += x[w];
  const double mu = row_sum(sum) / W;
  double sum_sq = 0.0;
  for (int w = threadIdx.x; w < W; w += kRowThreads) sum_sq += (x[w] - mu) * (x[w] - mu);
  const float r = layer_norm_rstd(row_sum(sum_sq), W);
  const float mean_f = static_cast<float>(mu);
  if (threadIdx.x == 0) {
    mean[b] = mean_f;
    rstd[b] = r;
  }
  const float* mod_row = mod != nullptr ? mod + b * 2 * W : nullptr;
  for (int w = threadIdx.x; w < W; w += kRowThreads) out[b * W + w] = adaln_output(x[w], mean_f, r, mod_row, W, w);
}

__global__ void __launch_bounds__(kRowThreads)
    adaln_backward_kernel(float* din, float* dmod, const float* dout, const float* in, const float* mean,
                          const float* rstd, const float* mod, int W) {
  const size_t b = blockIdx.x;
  const float* x = in + b * W;
  const float* dy = dout + b * W;
  const float* scale = mod != nullptr ? mod + b * 2 * W : nullptr;
  const float mu = mean[b], r = rstd[b];
  double dn_sum = 0.0, dn_n_sum = 0.0;
  for (int w = threadIdx.x; w < W; w += kRowThreads) {
    const float n = (x[w] - mu) * r;
    const float dn = adaln_dn(dy[w], scale, w);
    dn_sum += dn;
    dn_n_sum += static_cast<double>(dn) * n;
  }
  const float dn_mean = static_cast<float>(row_sum(dn_sum) / W);
  const float dn_n_mean = static_cast<float>(row_sum(dn_n_sum) / W);
  for (int w = threadIdx.x; w < W; w += kRowThreads) {
    const float n = (x[w] - mu) * r;
    din[b * W + w] += adaln_dx(adaln_dn(dy[w], scale, w), n, r, dn_mean, dn_n_mean);
    if (dmod != nullptr) {
      dmod[b * 2 * W + w] = dy[w] * (x[w] - mu) * r;
      dmod[b * 2 * W + W + w] = dy[w];
    }
  }
}

}  // namespace

void adaln_forward(const Context& ctx, float* out, float* mean, float* rstd, const float* in, const float* mod, int B,
                   int W) {
  launch_rows(ctx, B, adaln_forward_kernel, "adaln_forward", out, mean, rstd, in, mod, W);
}

void adaln_backward(const Context& ctx, float* din, float* dmod, const float* dout, const float* in, const float* mean,
                    const float* rstd, const float* mod, int B, int W) {
  launch_rows(ctx, B, adaln_backward_kernel, "adaln_backward", din, dmod, dout, in, mean, rstd, mod, W);
}

}  // namespace dnft::cuda
