// The optimiser's passes over the flat parameter buffers: the gradient's squared norm and the AdamW update. Both are
// bound by memory traffic once vectorised (AdamW reads four buffers and writes three); the scalar AdamW loop was a
// fifth of a config-M training step, as its stores may alias the step's constants and so nothing vectorised.
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/simd.h"
#include "cpu/thread_pool.h"
#include "cpu/vec_math.h"

namespace dnft::cpu {

namespace {

constexpr int64_t kOptimizerGrain = 32768;

#if defined(__x86_64__)
DNFT_AVX2 double sum_squares_avx2(const float* x, int64_t begin, int64_t end) {
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), b = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    lo = _mm256_fmadd_pd(a, a, lo);
    hi = _mm256_fmadd_pd(b, b, hi);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(lo, hi));
  double sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < end; ++i) sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

// adamw_update (core/math/adamw.h) on eight parameters, operation for operation in the same order and without
// contractions into FMAs (GCC would otherwise fuse the intrinsics' products and sums), so that it gives the scalar
// loop's results bit for bit.
DNFT_AVX2 __attribute__((optimize("fp-contract=off"))) void adamw_avx2(float* param, float* m, float* v,
                                                                       const float* grad, int64_t begin, int64_t end,
                                                                       AdamWStep s) {
  const __m256 grad_scale = _mm256_set1_ps(s.grad_scale), beta1 = _mm256_set1_ps(s.beta1),
               beta2 = _mm256_set1_ps(s.beta2), one_minus_beta1 = _mm256_set1_ps(1.0f - s.beta1),
               one_minus_beta2 = _mm256_set1_ps(1.0f - s.beta2), bc1 = _mm256_set1_ps(s.bias_correction1),
               bc2 = _mm256_set1_ps(s.bias_correction2), eps = _mm256_set1_ps(s.eps), lr = _mm256_set1_ps(s.lr),
               wd = _mm256_set1_ps(s.weight_decay);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(grad + i), grad_scale);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(beta1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(one_minus_beta1, g));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(beta2, _mm256_loadu_ps(v + i)),
                                    _mm256_mul_ps(_mm256_mul_ps(one_minus_beta2, g), g));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    const __m256 m_hat = _mm256_div_ps(mi, bc1), v_hat = _mm256_div_ps(vi, bc2);
    const __m256 p = _mm256_loadu_ps(param + i);
    const __m256 update =
        _mm256_add_ps(_mm256_div_ps(m_hat, _mm256_add_ps(_mm256_sqrt_ps(v_hat), eps)), _mm256_mul_ps(wd, p));
    _mm256_storeu_ps(param + i, _mm256_sub_ps(p, _mm256_mul_ps(lr, update)));
  }
  for (; i < end; ++i) adamw_update(param + i, m + i, v + i, grad[i], s);
}

// sum_squares_avx2 and adamw_avx2 sixteen elements at a time, the last group under lanes16's mask (cpu/vec_math.h).
DNFT_AVX512 double sum_squares_avx512(const float* x, int64_t begin, int64_t end) {
  __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
  for (int64_t i = begin; i < end; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(lanes16(end - i), x + i);
    const __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d b = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    lo = _mm512_fmadd_pd(a, a, lo);
    hi = _mm512_fmadd_pd(b, b, hi);
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}

DNFT_AVX512 __attribute__((optimize("fp-contract=off"))) void adamw_avx512(float* param, float* m, float* v,
                                                                           const float* grad, int64_t begin,
                                                                           int64_t end, AdamWStep s) {
  const __m512 grad_scale = _mm512_set1_ps(s.grad_scale), beta1 = _mm512_set1_ps(s.beta1),
               beta2 = _mm512_set1_ps(s.beta2), one_minus_beta1 = _mm512_set1_ps(1.0f - s.beta1),
               one_minus_beta2 = _mm512_set1_ps(1.0f - s.beta2), bc1 = _mm512_set1_ps(s.bias_correction1),
               bc2 = _mm512_set1_ps(s.bias_correction2), eps = _mm512_set1_ps(s.eps), lr = _mm512_set1_ps(s.lr),
               wd = _mm512_set1_ps(s.weight_decay);
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 k = lanes16(end - i);
    const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, grad + i), grad_scale);
    const __m512 mi =
        _mm512_add_ps(_mm512_mul_ps(beta1, _mm512_maskz_loadu_ps(k, m + i)), _mm512_mul_ps(one_minus_beta1, g));
    const __m512 vi = _mm512_add_ps(_mm512_mul_ps(beta2, _mm512_maskz_loadu_ps(k, v + i)),
                                    _mm512_mul_ps(_mm512_mul_ps(one_minus_beta2, g), g));
    _mm512_mask_storeu_ps(m + i, k, mi);
    _mm512_mask_storeu_ps(v + i, k, vi);
    const __m512 m_hat = _mm512_div_ps(mi, bc1), v_hat = _mm512_div_ps(vi, bc2);
    const __m512 p = _mm512_maskz_loadu_ps(k, param + i);
    const __m512 update =
        _mm512_add_ps(_mm512_div_ps(m_hat, _mm512_add_ps(_mm512_sqrt_ps(v_hat), eps)), _mm512_mul_ps(wd, p));
    _mm512_mask_storeu_ps(param + i, k, _mm512_sub_ps(p, _mm512_mul_ps(lr, update)));
  }
}
#endif

}  // namespace

double CpuBackend::sum_squares(const float* x, size_t n) {
  std::vector<double> partial(static_cast<size_t>(global_pool().size()), 0.0);
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int worker) {
#if defined(__x86_64__)
        if (avx512_enabled()) {
          partial[worker] += sum_squares_avx512(x, begin, end);
          return;
        }
        if (avx2_enabled()) {
          partial[worker] += sum_squares_avx2(x, begin, end);
          return;
        }
#endif
        double sum = 0.0;
        for (int64_t i = begin; i < end; ++i) sum += static_cast<double>(x[i]) * x[i];
        partial[worker] += sum;
      },
      kOptimizerGrain);
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void CpuBackend::adamw(float* param, float* m, float* v, const float* grad, size_t n, const AdamWStep& step) {
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int) {
        const AdamWStep s = step;  // a local copy: the stores below cannot alias it
#if defined(__x86_64__)
        if (avx512_enabled()) return adamw_avx512(param, m, v, grad, begin, end, s);
        if (avx2_enabled()) return adamw_avx2(param, m, v, grad, begin, end, s);
#endif
        for (int64_t i = begin; i < end; ++i) adamw_update(param + i, m + i, v + i, grad[i], s);
      },
      kOptimizerGrain);
}

}  // namespace dnft::cpu
