// Multi-head self-attention on the GPU, straightforward first: one block per (sample, head, query row), of a thread
// per key (row_threads), computes the row's logits, its stable softmax (block reductions for the maximum and the sum)
// and its output; the backward forms each row's dP and the softmax gradient dS into scratch, then dQ per query row and
// dK, dV per key row, each a fixed-order loop (no atomics). core/math/softmax.h is the CPU's per-row reference.
#include <cmath>

#include "cuda/cuda_backend.cuh"
#include "cuda/reduce.cuh"

namespace dnft::cuda {

namespace {

struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// The layout of qkv (B, T, 3W): q of token i, head h at qkv + (b·T + i)·3W + h·d; k at +W; v at +2W.
struct Heads {
  int T, H, d;
  __device__ size_t q(size_t b, int h, int i) const { return (b * T + i) * 3 * H * d + static_cast<size_t>(h) * d; }
  __device__ size_t o(size_t b, int h, int i) const { return (b * T + i) * H * d + static_cast<size_t>(h) * d; }
  __device__ size_t p(size_t b, int h, int i) const { return ((b * H + h) * T + i) * static_cast<size_t>(T); }
};

template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(float* out, float* probs, const float* qkv, Heads s, float scale) {
  const int i = blockIdx.x % s.T, h = (blockIdx.x / s.T) % s.H;
  const size_t b = blockIdx.x / (static_cast<size_t>(s.T) * s.H);
  const int W = s.H * s.d;
  const float* q = qkv + s.q(b, h, i);
  float* p = probs + s.p(b, h, i);
  float local_max = -INFINITY;
  for (int j = threadIdx.x; j < s.T; j += kThreads) {
    const float* k = qkv + s.q(b, h, j) + W;
    float dot = 0.0f;
    for (int c = 0; c < s.d; ++c) dot += q[c] * k[c];
    p[j] = dot * scale;
    local_max = fmaxf(local_max, p[j]);
  }
  const float max = block_reduce<kThreads>(local_max, Max{});
  double local_sum = 0.0;
  for (int j = threadIdx.x; j < s.T; j += kThreads) {
    p[j] = expf(p[j] - max);
    local_sum += p[j];
  }
  const float inv = static_cast<float>(1.0 / row_sum<kThreads>(local_sum));
  for (int j = threadIdx.x; j < s.T; j += kThreads) p[j] *= inv;
  __syncthreads();  // every probability of the row is written before any thread reads them all
  for (int c = threadIdx.x; c < s.d; c += kThreads) {
    float acc = 0.0f;
    for (int j = 0; j < s.T; ++j) acc += p[j] * qkv[s.q(b, h, j) + 2 * W + c];
    out[s.o(b, h, i) + c] = acc;
  }
}

// dS row i = P ⊙ (dP − Σ_j P·dP) with dP[i, j] = dO_i · V_j.
template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    attention_scores_backward_kernel(float* ds, const float* dout, const float* qkv, const float* probs, Heads s) {
  const int i = blockIdx.x % s.T, h = (blockIdx.x / s.T) % s.H;
  const size_t b = blockIdx.x / (static_cast<size_t>(s.T) * s.H);
  const int W = s.H * s.d;
  const float* dy = dout + s.o(b, h, i);
  const float* p = probs + s.p(b, h, i);
  float* row = ds + s.p(b, h, i);
  double local_dot = 0.0;
  for (int j = threadIdx.x; j < s.T; j += kThreads) {
    const float* v = qkv + s.q(b, h, j) + 2 * W;
    float dp = 0.0f;
    for (int c = 0; c < s.d; ++c) dp += dy[c] * v[c];
    row[j] = dp;
    local_dot += static_cast<double>(p[j]) * dp;
  }
  const float dot = static_cast<float>(row_sum<kThreads>(local_dot));
  for (int j = threadIdx.x; j < s.T; j += kThreads) row[j] = p[j] * (row[j] - dot);
}

// Per token n of (b, h): dQ_n = scale·Σ_j dS[n, j] K_j; dK_n = scale·Σ_i dS[i, n] Q_i; dV_n = Σ_i P[i, n] dO_i.
template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    attention_inputs_backward_kernel(float* dqkv, const float* dout, const float* qkv, const float* probs,
                                     const float* ds, Heads s, float scale) {
  const int n = blockIdx.x % s.T, h = (blockIdx.x / s.T) % s.H;
  const size_t b = blockIdx.x / (static_cast<size_t>(s.T) * s.H);
  const int W = s.H * s.d;
  const float* ds_row = ds + s.p(b, h, n);
  float* dq = dqkv + s.q(b, h, n);
  for (int c = threadIdx.x; c < s.d; c += kThreads) {
    float gq = 0.0f, gk = 0.0f, gv = 0.0f;
    for (int j = 0; j < s.T; ++j) {
      gq += ds_row[j] * qkv[s.q(b, h, j) + W + c];
      const float ds_jn = ds[s.p(b, h, j) + n];
      gk += ds_jn * qkv[s.q(b, h, j) + c];
      gv += probs[s.p(b, h, j) + n] * dout[s.o(b, h, j) + c];
    }
    dq[c] = scale * gq;
    dq[W + c] = scale * gk;
    dq[2 * W + c] = gv;
  }
}

}  // namespace

void CudaBackend::attention_forward(float* out, float* probs, const float* qkv, int B, int T, int H, int d) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  with_row_threads(T, 1, [&](auto threads) {
    launch_rows<threads>(ctx_, B * H * T, attention_forward_kernel<threads>, "attention_forward", out, probs, qkv,
                         Heads{T, H, d}, scale);
  });
}

void CudaBackend::attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, int B, int T,
                                     int H, int d) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  auto* ds = static_cast<float*>(ctx_.scratch->get(static_cast<size_t>(B) * H * T * T * sizeof(float)));
  const Heads s{T, H, d};
  with_row_threads(T, 1, [&](auto threads) {
    launch_rows<threads>(ctx_, B * H * T, attention_scores_backward_kernel<threads>, "attention_backward (scores)", ds,
                         dout, qkv, probs, s);
  });
  // A block per token and a thread per channel of its head.
  with_row_threads(d, 1, [&](auto threads) {
    launch_rows<threads>(ctx_, B * H * T, attention_inputs_backward_kernel<threads>, "attention_backward (inputs)",
                         dqkv, dout, qkv, probs, static_cast<const float*>(ds), s, scale);
  });
}

}  // namespace dnft::cuda
