// Multi-head self-attention softmax(q kᵀ/√d)·v over the T tokens of each sample, parallel over (sample, head).
// The forward stores the probabilities (B, H, T, T) for the backward, which then needs no recomputation. The four
// products of each (sample, head) run through our GEMM on strided views of qkv; nested in the pool, it runs serially.
#include <cmath>
#include <vector>

#include "core/math/softmax.h"
#include "cpu/cpu_backend.h"
#include "cpu/gemm.h"
#include "cpu/simd.h"
#include "cpu/thread_pool.h"
#include "cpu/vec_math.h"

namespace dnft::cpu {

namespace {

#if defined(__x86_64__)
// core/math/softmax.h's softmax_row, eight logits at a time with the vector exp (a row of T = 64 logits costs
// 64 scalar expf calls otherwise: as much as the products around it).
DNFT_AVX2 void softmax_row_avx2(float* row, int n) {
  const int n8 = n / 8 * 8;
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  for (int i = 0; i < n8; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmax);
  float max = lanes[0];
  for (int j = 1; j < 8; ++j) max = fmaxf(max, lanes[j]);
  for (int i = n8; i < n; ++i) max = fmaxf(max, row[i]);
  const __m256 shift = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  for (int i = 0; i < n8; i += 8) {
    const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(row + i), shift));
    _mm256_storeu_ps(row + i, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  _mm256_store_ps(lanes, vsum);
  float sum = 0.0f;
  for (float lane : lanes) sum += lane;
  for (int i = n8; i < n; ++i) {
    row[i] = expf(row[i] - max);
    sum += row[i];
  }
  const float inv = 1.0f / sum;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (int i = 0; i < n8; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), vinv));
  for (int i = n8; i < n; ++i) row[i] *= inv;
}

// softmax_row_avx2's passes sixteen logits at a time, the last group under lanes16's mask (its lanes read as -inf
// for the maximum, as 0 for the sum).
DNFT_AVX512 void softmax_row_avx512(float* row, int n) {
  const __m512 minus_inf = _mm512_set1_ps(-INFINITY);
  __m512 vmax = minus_inf;
  for (int i = 0; i < n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(minus_inf, lanes16(n - i), row + i));
  const __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  __m512 vsum = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 k = lanes16(n - i);
    const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + i), shift));
    _mm512_mask_storeu_ps(row + i, k, e);
    vsum = _mm512_mask_add_ps(vsum, k, vsum, e);
  }
  const __m512 vinv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
  for (int i = 0; i < n; i += 16) {
    const __mmask16 k = lanes16(n - i);
    _mm512_mask_storeu_ps(row + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + i), vinv));
  }
}
#endif

// Softmax of each of `rows` rows of n logits, in place.
void softmax_rows(float* p, int rows, int n) {
  for (int i = 0; i < rows; ++i) {
    float* row = p + static_cast<int64_t>(i) * n;
#if defined(__x86_64__)
    if (avx512_enabled()) {
      softmax_row_avx512(row, n);
      continue;
    }
    if (avx2_enabled()) {
      softmax_row_avx2(row, n);
      continue;
    }
#endif
    softmax_row(row, n);
  }
}

}  // namespace

void CpuBackend::attention_forward(float* out, float* probs, const float* qkv, int B, int T, int H, int d) {
  const int W = H * d, ld = 3 * W;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  global_pool().parallel_for(static_cast<int64_t>(B) * H, [&](int64_t begin, int64_t end, int) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = qkv + b * T * ld + h * d;
      float* p = probs + bh * T * T;
      sgemm(false, true, T, T, d, scale, q, ld, q + W, ld, 0.0f, p, T);  // logits q kᵀ/√d
      softmax_rows(p, T, T);
      sgemm(false, false, T, d, T, 1.0f, p, T, q + 2 * W, ld, 0.0f, out + b * T * W + h * d, W);
    }
  });
}

void CpuBackend::attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, int B, int T,
                                    int H, int d) {
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
