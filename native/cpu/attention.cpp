// Multi-head self-attention softmax(q kᵀ/√d)·v over the T tokens of each sample, parallel over (sample, head).
// The forward stores the probabilities (B, H, T, T) for the backward, which then needs no recomputation. The four
// products of each (sample, head) run through our GEMM on strided views of qkv; nested in the pool, it runs serially.
#include <cmath>
#include <vector>

#include "core/math/softmax.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

void attention_forward(float* out, float* probs, const float* qkv, int B, int T, int H, int d) {
  const int W = H * d, ld = 3 * W;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  global_pool().parallel_for(static_cast<int64_t>(B) * H, [&](int64_t begin, int64_t end, int) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = qkv + b * T * ld + h * d;
      float* p = probs + bh * T * T;
      sgemm(false, true, T, T, d, scale, q, ld, q + W, ld, 0.0f, p, T);  // logits q kᵀ/√d
      for (int i = 0; i < T; ++i) softmax_row(p + static_cast<int64_t>(i) * T, T);
      sgemm(false, false, T, d, T, 1.0f, p, T, q + 2 * W, ld, 0.0f, out + b * T * W + h * d, W);
    }
  });
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, int B, int T, int H,
                        int d) {
  const int W = H * d, ld = 3 * W;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> scratch(static_cast<size_t>(global_pool().size()) * T * T);
  global_pool().parallel_for(static_cast<int64_t>(B) * H, [&](int64_t begin, int64_t end, int worker) {
    float* ds = scratch.data() + static_cast<size_t>(worker) * T * T;  // dP, then the logits' gradient in place
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = qkv + b * T * ld + h * d;
      const float* p = probs + bh * T * T;
      const float* dy = dout + b * T * W + h * d;
      float* dq = dqkv + b * T * ld + h * d;
      sgemm(true, false, T, d, T, 1.0f, p, T, dy, W, 0.0f, dq + 2 * W, ld);  // dV = Pᵀ dO
      sgemm(false, true, T, T, d, 1.0f, dy, W, q + 2 * W, ld, 0.0f, ds, T);  // dP = dO Vᵀ
      for (int i = 0; i < T; ++i) {
        softmax_row_backward(ds + static_cast<int64_t>(i) * T, ds + static_cast<int64_t>(i) * T,
                             p + static_cast<int64_t>(i) * T, T);
      }
      sgemm(false, false, T, d, T, scale, ds, T, q + W, ld, 0.0f, dq, ld);  // dQ = dS K/√d
      sgemm(true, false, T, d, T, scale, ds, T, q, ld, 0.0f, dq + W, ld);   // dK = dSᵀ Q/√d
    }
  });
}

}  // namespace dnft::cpu
