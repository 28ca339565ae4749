// adaLN-Zero on the GPU: layer norm of every token then the sample's modulation, one block per token row (a few
// channels a thread, kNormChannelsPerThread) with the row statistics in double by block reduction; the modulation's
// gradient and the gated residual's gate gradient sum over a sample's tokens in a fixed order, one thread per (sample,
// channel). core/math/adaln.h holds the per-element math shared with the CPU.
#include "core/math/adaln.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/reduce.cuh"

namespace dnft::cuda {

namespace {

// Channels a thread of a norm row: each of the row's two reductions costs a barrier per halving of the block.
constexpr int kNormChannelsPerThread = 4;

template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    modulated_norm_forward_kernel(float* out, float* mean, float* rstd, const float* in, const float* scale,
                                  const float* shift, int T, int W, int mod_stride) {
  const size_t row = blockIdx.x;
  const float* x = in + row * W;
  double sum = 0.0;
  for (int w = threadIdx.x; w < W; w += kThreads) sum += x[w];
  const double mu = row_sum<kThreads>(sum) / W;
  double sum_sq = 0.0;
  for (int w = threadIdx.x; w < W; w += kThreads) sum_sq += (x[w] - mu) * (x[w] - mu);
  const float r = layer_norm_rstd(row_sum<kThreads>(sum_sq), W);
  const float mean_f = static_cast<float>(mu);
  if (threadIdx.x == 0) {
    mean[row] = mean_f;
    rstd[row] = r;
  }
  const size_t m = row / T * mod_stride;
  for (int w = threadIdx.x; w < W; w += kThreads) {
    const float n = (x[w] - mean_f) * r;
    out[row * W + w] = scale == nullptr ? n : adaln_modulate(n, scale[m + w], shift[m + w]);
  }
}

template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    modulated_norm_backward_kernel(float* din, const float* dout, const float* in, const float* mean, const float* rstd,
                                   const float* scale, int T, int W, int mod_stride) {
  const size_t row = blockIdx.x;
  const float* x = in + row * W;
  const float* dy = dout + row * W;
  const float* s = scale != nullptr ? scale + row / T * mod_stride : nullptr;
  const float mu = mean[row], r = rstd[row];
  double dn_sum = 0.0, dn_n_sum = 0.0;
  for (int w = threadIdx.x; w < W; w += kThreads) {
    const float dn = adaln_dn(dy[w], s != nullptr ? s[w] : 0.0f);
    dn_sum += dn;
    dn_n_sum += static_cast<double>(dn) * ((x[w] - mu) * r);
  }
  const float dn_mean = static_cast<float>(row_sum<kThreads>(dn_sum) / W);
  const float dn_n_mean = static_cast<float>(row_sum<kThreads>(dn_n_sum) / W);
  for (int w = threadIdx.x; w < W; w += kThreads) {
    const float n = (x[w] - mu) * r;
    din[row * W + w] += adaln_dx(adaln_dn(dy[w], s != nullptr ? s[w] : 0.0f), n, r, dn_mean, dn_n_mean);
  }
}

}  // namespace

void CudaBackend::modulated_norm_forward(float* out, float* mean, float* rstd, const float* in, const float* scale,
                                         const float* shift, int B, int T, int W, int mod_stride) {
  with_row_threads(W, kNormChannelsPerThread, [&](auto threads) {
    launch_rows<threads>(ctx_, B * T, modulated_norm_forward_kernel<threads>, "modulated_norm_forward", out, mean, rstd,
                         in, scale, shift, T, W, mod_stride);
  });
}

void CudaBackend::modulated_norm_backward(float* din, float* dscale, float* dshift, const float* dout, const float* in,
                                          const float* mean, const float* rstd, const float* scale, int B, int T, int W,
                                          int mod_stride) {
  with_row_threads(W, kNormChannelsPerThread, [&](auto threads) {
    launch_rows<threads>(ctx_, B * T, modulated_norm_backward_kernel<threads>, "modulated_norm_backward", din, dout, in,
                         mean, rstd, scale, T, W, mod_stride);
  });
  if (dscale == nullptr) return;
  // One thread per (sample, channel) sums its tokens in order: no atomics, the same result every run.
  for_each_index(
      ctx_, static_cast<size_t>(B) * W,
      [=] __device__(size_t i) {
        const size_t b = i / W, w = i % W;
        float ds = 0.0f, dsh = 0.0f;
        for (size_t row = b * T; row < (b + 1) * T; ++row) {
          adaln_modulation_grad(ds, dsh, dout[row * W + w], in[row * W + w], mean[row], rstd[row]);
        }
        dscale[b * mod_stride + w] = ds;
        dshift[b * mod_stride + w] = dsh;
      },
      "modulated_norm_backward (modulation)");
}

void CudaBackend::gated_residual_forward(float* out, const float* h, const float* y, const float* gate, int B, int T,
                                         int W, int mod_stride) {
  for_each_index(
      ctx_, static_cast<size_t>(B) * T * W,
      [=] __device__(size_t i) {
        const size_t row = i / W, w = i % W;
        out[i] = gated_residual(h[i], gate[row / T * mod_stride + w], y[i]);
      },
      "gated_residual_forward");
}

void CudaBackend::gated_residual_backward(float* dy, float* dgate, const float* dout, const float* y, const float* gate,
                                          int B, int T, int W, int mod_stride) {
  for_each_index(
      ctx_, static_cast<size_t>(B) * T * W,
      [=] __device__(size_t i) {
        const size_t row = i / W, w = i % W;
        dy[i] = gate[row / T * mod_stride + w] * dout[i];
      },
      "gated_residual_backward");
  for_each_index(
      ctx_, static_cast<size_t>(B) * W,
      [=] __device__(size_t i) {
        const size_t b = i / W, w = i % W;
        float g = 0.0f;
        for (size_t row = b * T; row < (b + 1) * T; ++row) g += dout[row * W + w] * y[row * W + w];
        dgate[b * mod_stride + w] = g;
      },
      "gated_residual_backward (gate)");
}

}  // namespace dnft::cuda
