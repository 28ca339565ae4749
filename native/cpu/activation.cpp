// SiLU and GELU forward and backward over flat arrays. The per-element formulas are core/math/activation.h's; on
// AVX2 machines eight elements at a time with a vector exp (sixteen on AVX-512 ones), since libm's scalar expf/tanhf
// would cost more than the GEMMs around them leave (about 6 ns per element, 4 % of a config-M training step for SiLU
// alone).
#include "core/math/activation.h"

#include "cpu/cpu_backend.h"
#include "cpu/simd.h"
#include "cpu/thread_pool.h"
#include "cpu/vec_math.h"

namespace dnft::cpu {

namespace {

#if defined(__x86_64__)
// The GELU's inner tanh(√(2/π)·(z + a z³)) of eight elements.
DNFT_AVX2 inline __m256 gelu_tanh_avx2(__m256 z) {
  const __m256 z3 = _mm256_mul_ps(_mm256_mul_ps(z, z), z);
  return tanh_avx2(_mm256_mul_ps(_mm256_set1_ps(kGeluC), _mm256_fmadd_ps(_mm256_set1_ps(kGeluA), z3, z)));
}

// Each loop runs whole groups of eight and leaves the last n % 8 elements to the scalar formula.
DNFT_AVX2 void silu_forward_avx2(float* out, const float* in, int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 z = _mm256_loadu_ps(in + i);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(z, sigmoid_avx2(z)));
  }
  for (; i < end; ++i) out[i] = silu(in[i]);
}

DNFT_AVX2 void silu_backward_avx2(float* din, const float* dout, const float* in, int64_t begin, int64_t end) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 z = _mm256_loadu_ps(in + i);
    const __m256 s = sigmoid_avx2(z);
    const __m256 grad = _mm256_mul_ps(s, _mm256_fmadd_ps(z, _mm256_sub_ps(one, s), one));
    _mm256_storeu_ps(din + i, _mm256_mul_ps(_mm256_loadu_ps(dout + i), grad));
  }
  for (; i < end; ++i) din[i] = dout[i] * silu_grad(in[i]);
}

DNFT_AVX2 void gelu_forward_avx2(float* out, const float* in, int64_t begin, int64_t end) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 z = _mm256_loadu_ps(in + i);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(half, z), _mm256_add_ps(one, gelu_tanh_avx2(z))));
  }
  for (; i < end; ++i) out[i] = gelu(in[i]);
}

DNFT_AVX2 void gelu_backward_avx2(float* din, const float* dout, const float* in, int64_t begin, int64_t end) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 c = _mm256_set1_ps(kGeluC), a3 = _mm256_set1_ps(3.0f * kGeluA);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 z = _mm256_loadu_ps(in + i);
    const __m256 th = gelu_tanh_avx2(z);
    // 0.5·(1 + th) + 0.5·z·(1 - th²)·c·(1 + 3a·z²)
    const __m256 sech2 = _mm256_fnmadd_ps(th, th, one);
    const __m256 inner = _mm256_mul_ps(c, _mm256_fmadd_ps(a3, _mm256_mul_ps(z, z), one));
    const __m256 outer = _mm256_mul_ps(half, _mm256_add_ps(one, th));
    const __m256 grad = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(half, z), sech2), inner, outer);
    _mm256_storeu_ps(din + i, _mm256_mul_ps(_mm256_loadu_ps(dout + i), grad));
  }
  for (; i < end; ++i) din[i] = dout[i] * gelu_grad(in[i]);
}

// The same loops sixteen elements at a time, the last group under lanes16's mask (cpu/vec_math.h).
DNFT_AVX512 inline __m512 gelu_tanh_avx512(__m512 z) {
  const __m512 z3 = _mm512_mul_ps(_mm512_mul_ps(z, z), z);
  return tanh_avx512(_mm512_mul_ps(_mm512_set1_ps(kGeluC), _mm512_fmadd_ps(_mm512_set1_ps(kGeluA), z3, z)));
}

DNFT_AVX512 void silu_forward_avx512(float* out, const float* in, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 k = lanes16(end - i);
    const __m512 z = _mm512_maskz_loadu_ps(k, in + i);
    _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(z, sigmoid_avx512(z)));
  }
}

DNFT_AVX512 void silu_backward_avx512(float* din, const float* dout, const float* in, int64_t begin, int64_t end) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 k = lanes16(end - i);
    const __m512 z = _mm512_maskz_loadu_ps(k, in + i);
    const __m512 s = sigmoid_avx512(z);
    const __m512 grad = _mm512_mul_ps(s, _mm512_fmadd_ps(z, _mm512_sub_ps(one, s), one));
    _mm512_mask_storeu_ps(din + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, dout + i), grad));
  }
}

DNFT_AVX512 void gelu_forward_avx512(float* out, const float* in, int64_t begin, int64_t end) {
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 k = lanes16(end - i);
    const __m512 z = _mm512_maskz_loadu_ps(k, in + i);
    _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(_mm512_mul_ps(half, z), _mm512_add_ps(one, gelu_tanh_avx512(z))));
  }
}

DNFT_AVX512 void gelu_backward_avx512(float* din, const float* dout, const float* in, int64_t begin, int64_t end) {
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512 c = _mm512_set1_ps(kGeluC), a3 = _mm512_set1_ps(3.0f * kGeluA);
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 k = lanes16(end - i);
    const __m512 z = _mm512_maskz_loadu_ps(k, in + i);
    const __m512 th = gelu_tanh_avx512(z);
    const __m512 sech2 = _mm512_fnmadd_ps(th, th, one);
    const __m512 inner = _mm512_mul_ps(c, _mm512_fmadd_ps(a3, _mm512_mul_ps(z, z), one));
    const __m512 outer = _mm512_mul_ps(half, _mm512_add_ps(one, th));
    const __m512 grad = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_mul_ps(half, z), sech2), inner, outer);
    _mm512_mask_storeu_ps(din + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, dout + i), grad));
  }
}

#endif  // __x86_64__

}  // namespace

void CpuBackend::silu_forward(float* out, const float* in, size_t n) {
  parallel_elements(n, [&](int64_t begin, int64_t end) {
#if defined(__x86_64__)
    if (avx512_enabled()) return silu_forward_avx512(out, in, begin, end);
    if (avx2_enabled()) return silu_forward_avx2(out, in, begin, end);
#endif
    for (int64_t i = begin; i < end; ++i) out[i] = silu(in[i]);
  });
}

void CpuBackend::silu_backward(float* din, const float* dout, const float* in, size_t n) {
  parallel_elements(n, [&](int64_t begin, int64_t end) {
#if defined(__x86_64__)
    if (avx512_enabled()) return silu_backward_avx512(din, dout, in, begin, end);
    if (avx2_enabled()) return silu_backward_avx2(din, dout, in, begin, end);
#endif
    for (int64_t i = begin; i < end; ++i) din[i] = dout[i] * silu_grad(in[i]);
  });
}

void CpuBackend::gelu_forward(float* out, const float* in, size_t n) {
  parallel_elements(n, [&](int64_t begin, int64_t end) {
#if defined(__x86_64__)
    if (avx512_enabled()) return gelu_forward_avx512(out, in, begin, end);
    if (avx2_enabled()) return gelu_forward_avx2(out, in, begin, end);
#endif
    for (int64_t i = begin; i < end; ++i) out[i] = gelu(in[i]);
  });
}

void CpuBackend::gelu_backward(float* din, const float* dout, const float* in, size_t n) {
  parallel_elements(n, [&](int64_t begin, int64_t end) {
#if defined(__x86_64__)
    if (avx512_enabled()) return gelu_backward_avx512(din, dout, in, begin, end);
    if (avx2_enabled()) return gelu_backward_avx2(din, dout, in, begin, end);
#endif
    for (int64_t i = begin; i < end; ++i) din[i] = dout[i] * gelu_grad(in[i]);
  });
}

}  // namespace dnft::cpu
