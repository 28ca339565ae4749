// The optimiser's passes over the flat parameter buffers: the gradient's squared norm and the AdamW update. Both are
// bound by memory traffic once vectorised (AdamW reads four buffers and writes three); the scalar AdamW loop was a
// fifth of a config-M training step, as its stores may alias the step's constants and so nothing vectorised. The
// update also sums the squares of what it writes (AdamWSums), from registers: the next step's overflow check would
// otherwise read θ, m and v once more, 3 % of a config-M step.
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/simd.h"
#include "cpu/thread_pool.h"
#include "cpu/vec_math.h"

namespace dnft::cpu {

namespace {

constexpr int64_t kOptimizerGrain = 32768;

// adamw_update over [begin, end) and the squares of what it writes: the portable path and the vector paths' tails.
// The step by value, so that the stores cannot alias it.
AdamWSums adamw_scalar(float* param, float* m, float* v, const float* grad, int64_t begin, int64_t end, AdamWStep s) {
  AdamWSums sums;
  for (int64_t i = begin; i < end; ++i) {
    adamw_update(param + i, m + i, v + i, grad[i], s);
    sums +=
        {static_cast<double>(param[i]) * param[i], static_cast<double>(m[i]) * m[i], static_cast<double>(v[i]) * v[i]};
  }
  return sums;
}

#if defined(__x86_64__)
// Adds x² of the eight lanes to sum, in double.
DNFT_AVX2 inline void add_squares_avx2(__m256d& sum, __m256 x) {
  const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
  sum = _mm256_fmadd_pd(lo, lo, _mm256_fmadd_pd(hi, hi, sum));
}

DNFT_AVX2 double horizontal_sum(__m256d x) {
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, x);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

DNFT_AVX2 double sum_squares_avx2(const float* x, int64_t begin, int64_t end) {
  // Two sums, so that the additions of one group need not wait for the previous group's.
  __m256d even = _mm256_setzero_pd(), odd = _mm256_setzero_pd();
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) {
    add_squares_avx2(even, _mm256_loadu_ps(x + i));
    add_squares_avx2(odd, _mm256_loadu_ps(x + i + 8));
  }
  for (; i + 8 <= end; i += 8) add_squares_avx2(even, _mm256_loadu_ps(x + i));
  double total = horizontal_sum(_mm256_add_pd(even, odd));
  for (; i < end; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

// adamw_update (core/math/adamw.h) on eight parameters, operation for operation in the same order and without
// contractions into FMAs (GCC would otherwise fuse the intrinsics' products and sums), so that it gives the scalar
// loop's results bit for bit.
DNFT_AVX2 __attribute__((optimize("fp-contract=off"))) AdamWSums adamw_avx2(float* param, float* m, float* v,
                                                                            const float* grad, int64_t begin,
                                                                            int64_t end, AdamWStep s) {
  const __m256 grad_scale = _mm256_set1_ps(s.grad_scale), beta1 = _mm256_set1_ps(s.beta1),
               beta2 = _mm256_set1_ps(s.beta2), one_minus_beta1 = _mm256_set1_ps(1.0f - s.beta1),
               one_minus_beta2 = _mm256_set1_ps(1.0f - s.beta2), bc1 = _mm256_set1_ps(s.bias_correction1),
               bc2 = _mm256_set1_ps(s.bias_correction2), eps = _mm256_set1_ps(s.eps), lr = _mm256_set1_ps(s.lr),
               wd = _mm256_set1_ps(s.weight_decay);
  __m256d sum_p = _mm256_setzero_pd(), sum_m = _mm256_setzero_pd(), sum_v = _mm256_setzero_pd();
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
    const __m256 p_new = _mm256_sub_ps(p, _mm256_mul_ps(lr, update));
    _mm256_storeu_ps(param + i, p_new);
    add_squares_avx2(sum_p, p_new);
    add_squares_avx2(sum_m, mi);
    add_squares_avx2(sum_v, vi);
  }
  AdamWSums sums{horizontal_sum(sum_p), horizontal_sum(sum_m), horizontal_sum(sum_v)};
  sums += adamw_scalar(param, m, v, grad, i, end, s);
  return sums;
}

// Adds x² of the sixteen lanes to sum, in double.
DNFT_AVX512 inline void add_squares_avx512(__m512d& sum, __m512 x) {
  const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
  const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
  sum = _mm512_fmadd_pd(lo, lo, _mm512_fmadd_pd(hi, hi, sum));
}

// sum_squares_avx2 and adamw_avx2 sixteen elements at a time, the last group under lanes16's mask (cpu/vec_math.h).
DNFT_AVX512 double sum_squares_avx512(const float* x, int64_t begin, int64_t end) {
  // Two sums, so that the additions of one group need not wait for the previous group's.
  __m512d even = _mm512_setzero_pd(), odd = _mm512_setzero_pd();
  for (int64_t i = begin; i < end; i += 32) {
    add_squares_avx512(even, _mm512_maskz_loadu_ps(lanes16(end - i), x + i));
    add_squares_avx512(odd, _mm512_maskz_loadu_ps(lanes16(end - i - 16), x + i + 16));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(even, odd));
}

DNFT_AVX512 __attribute__((optimize("fp-contract=off"))) AdamWSums adamw_avx512(float* param, float* m, float* v,
                                                                                const float* grad, int64_t begin,
                                                                                int64_t end, AdamWStep s) {
  const __m512 grad_scale = _mm512_set1_ps(s.grad_scale), beta1 = _mm512_set1_ps(s.beta1),
               beta2 = _mm512_set1_ps(s.beta2), one_minus_beta1 = _mm512_set1_ps(1.0f - s.beta1),
               one_minus_beta2 = _mm512_set1_ps(1.0f - s.beta2), bc1 = _mm512_set1_ps(s.bias_correction1),
               bc2 = _mm512_set1_ps(s.bias_correction2), eps = _mm512_set1_ps(s.eps), lr = _mm512_set1_ps(s.lr),
               wd = _mm512_set1_ps(s.weight_decay);
  // The masked-off lanes of the last group read as zero and update to zero, adding nothing to the sums.
  __m512d sum_p = _mm512_setzero_pd(), sum_m = _mm512_setzero_pd(), sum_v = _mm512_setzero_pd();
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
    const __m512 p_new = _mm512_sub_ps(p, _mm512_mul_ps(lr, update));
    _mm512_mask_storeu_ps(param + i, k, p_new);
    add_squares_avx512(sum_p, p_new);
    add_squares_avx512(sum_m, mi);
    add_squares_avx512(sum_v, vi);
  }
  return {_mm512_reduce_add_pd(sum_p), _mm512_reduce_add_pd(sum_m), _mm512_reduce_add_pd(sum_v)};
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

std::optional<AdamWSums> CpuBackend::adamw(float* param, float* m, float* v, const float* grad, size_t n,
                                           const AdamWStep& step) {
  std::vector<AdamWSums> partial(static_cast<size_t>(global_pool().size()));
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int worker) {
#if defined(__x86_64__)
        if (avx512_enabled()) {
          partial[worker] += adamw_avx512(param, m, v, grad, begin, end, step);
          return;
        }
        if (avx2_enabled()) {
          partial[worker] += adamw_avx2(param, m, v, grad, begin, end, step);
          return;
        }
#endif
        partial[worker] += adamw_scalar(param, m, v, grad, begin, end, step);
      },
      kOptimizerGrain);
  AdamWSums total;
  for (const AdamWSums& p : partial) total += p;
  return total;
}

}  // namespace dnft::cpu
