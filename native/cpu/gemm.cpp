// BLIS/Goto-style SGEMM: op(B) is packed into KC x NC blocks of NR-wide strips, op(A) into MC x KC blocks of MR-tall
// strips (transposes are absorbed by the packing), and a register-blocked MR x NR micro-kernel runs over them.
// Threads split C into disjoint column (or row) ranges, each running the whole blocked loop with its own buffers.
// Each kernel path (cpu/simd.h) brings its own tile and blocking: 6 x 16 for the generic and AVX2 kernels (16 vector
// registers), 14 x 32 for AVX-512 (28 accumulators and two B vectors of the 32 zmm registers).

#include "cpu/gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>

#include "cpu/simd.h"
#include "cpu/thread_pool.h"
#include "cpu/vec_math.h"

namespace dnft::cpu {
namespace {

// The tile of the generic and AVX2 kernels.
constexpr int kMR = 6;
constexpr int kNR = 16;
// The tile of the AVX-512 kernel.
constexpr int kMR512 = 14;
constexpr int kNR512 = 32;

// A path's tile (MR x NR) and cache blocks: the A block (MC x KC floats) stays in L2, the B micro-panel (KC x NR) in
// L1, the B block (KC x NC) in L3.
struct Blocking {
  int mr, nr, mc, kc, nc;
};
constexpr Blocking kBlocking6x16{kMR, kNR, 144, 256, 4080};
constexpr Blocking kBlocking14x32{kMR512, kNR512, 168, 256, 4096};

// Below this many multiply-adds the pool wake-up costs more than it saves.
constexpr int64_t kParallelMinFlops = 1 << 17;

// C tile (m x n, m <= MR, n <= NR) = alpha * acc + beta * C + bias; beta == 0 does not read C.
using KernelFn = void (*)(int k, const float* a, const float* b, float* c, int ldc, int m, int n, float alpha,
                          float beta, const float* bias);
// Packs op(B)[k0:k0+kc, j0:j0+nc] into NR-wide strips, zero-padding the last one.
using PackBFn = void (*)(bool trans, const float* B, int ldb, int k0, int kc, int j0, int nc, float* dst);
// Packs op(A)[i0:i0+mc, k0:k0+kc] into MR-tall strips, zero-padding the last one.
using PackAFn = void (*)(bool trans, const float* A, int lda, int i0, int mc, int k0, int kc, float* dst);

// acc holds the tile's rows NR floats apart.
template <int NR>
void store_tile(const float* acc, float* c, int ldc, int m, int n, float alpha, float beta, const float* bias) {
  for (int i = 0; i < m; ++i) {
    float* crow = c + static_cast<int64_t>(i) * ldc;
    const float* arow = acc + i * NR;
    for (int j = 0; j < n; ++j) {
      float v = alpha * arow[j];
      if (beta != 0.0f) v += beta * crow[j];
      if (bias != nullptr) v += bias[j];
      crow[j] = v;
    }
  }
}

#if defined(__GNUC__)
// GCC/Clang vector extensions: SSE2 on x86-64 without AVX2, NEON on arm64.
typedef float V4 __attribute__((vector_size(16)));

inline V4 load_v4(const float* p) {
  V4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

void kernel_generic(int k, const float* a, const float* b, float* c, int ldc, int m, int n, float alpha, float beta,
                    const float* bias) {
  alignas(16) float acc[kMR * kNR];
  // Two rows at a time: 8 accumulators + 4 B vectors + 2 broadcasts fit in 16 vector registers.
  for (int i = 0; i < kMR; i += 2) {
    V4 r00 = {}, r01 = {}, r02 = {}, r03 = {}, r10 = {}, r11 = {}, r12 = {}, r13 = {};
    for (int p = 0; p < k; ++p) {
      const float* bp = b + p * kNR;
      const V4 b0 = load_v4(bp), b1 = load_v4(bp + 4), b2 = load_v4(bp + 8), b3 = load_v4(bp + 12);
      const float a0 = a[p * kMR + i], a1 = a[p * kMR + i + 1];
      const V4 x = {a0, a0, a0, a0}, y = {a1, a1, a1, a1};
      r00 += x * b0;
      r01 += x * b1;
      r02 += x * b2;
      r03 += x * b3;
      r10 += y * b0;
      r11 += y * b1;
      r12 += y * b2;
      r13 += y * b3;
    }
    const V4 rows[8] = {r00, r01, r02, r03, r10, r11, r12, r13};
    std::memcpy(acc + i * kNR, rows, sizeof(rows));
  }
  store_tile<kNR>(acc, c, ldc, m, n, alpha, beta, bias);
}
#else
void kernel_generic(int k, const float* a, const float* b, float* c, int ldc, int m, int n, float alpha, float beta,
                    const float* bias) {
  float acc[kMR * kNR];
  for (int i = 0; i < kMR; ++i) {
    float row[kNR] = {};
    for (int p = 0; p < k; ++p) {
      const float ai = a[p * kMR + i];
      const float* bp = b + p * kNR;
      for (int j = 0; j < kNR; ++j) row[j] += ai * bp[j];
    }
    for (int j = 0; j < kNR; ++j) acc[i * kNR + j] = row[j];
  }
  store_tile<kNR>(acc, c, ldc, m, n, alpha, beta, bias);
}
#endif

template <int NR>
void pack_b_generic(bool trans, const float* B, int ldb, int k0, int kc, int j0, int nc, float* dst) {
  for (int js = 0; js < nc; js += NR) {
    const int nr = std::min(NR, nc - js);
    const int j = j0 + js;
    if (!trans) {
      for (int p = 0; p < kc; ++p) {
        const float* src = B + static_cast<int64_t>(k0 + p) * ldb + j;
        float* d = dst + p * NR;
        for (int c = 0; c < nr; ++c) d[c] = src[c];
        for (int c = nr; c < NR; ++c) d[c] = 0.0f;
      }
    } else {
      for (int c = 0; c < NR; ++c) {
        if (c < nr) {
          const float* src = B + static_cast<int64_t>(j + c) * ldb + k0;
          for (int p = 0; p < kc; ++p) dst[p * NR + c] = src[p];
        } else {
          for (int p = 0; p < kc; ++p) dst[p * NR + c] = 0.0f;
        }
      }
    }
    dst += static_cast<int64_t>(kc) * NR;
  }
}

template <int MR>
void pack_a(bool trans, const float* A, int lda, int i0, int mc, int k0, int kc, float* dst) {
  for (int is = 0; is < mc; is += MR) {
    const int mr = std::min(MR, mc - is);
    const int i = i0 + is;
    if (!trans) {
      if (mr == MR) {
        const float* rows[MR];
        for (int r = 0; r < MR; ++r) rows[r] = A + static_cast<int64_t>(i + r) * lda + k0;
        for (int p = 0; p < kc; ++p) {
          float* d = dst + p * MR;
          for (int r = 0; r < MR; ++r) d[r] = rows[r][p];
        }
      } else {
        for (int r = 0; r < MR; ++r) {
          if (r < mr) {
            const float* src = A + static_cast<int64_t>(i + r) * lda + k0;
            for (int p = 0; p < kc; ++p) dst[p * MR + r] = src[p];
          } else {
            for (int p = 0; p < kc; ++p) dst[p * MR + r] = 0.0f;
          }
        }
      }
    } else {
      for (int p = 0; p < kc; ++p) {
        const float* src = A + static_cast<int64_t>(k0 + p) * lda + i;
        float* d = dst + p * MR;
        for (int r = 0; r < mr; ++r) d[r] = src[r];
        for (int r = mr; r < MR; ++r) d[r] = 0.0f;
      }
    }
    dst += static_cast<int64_t>(kc) * MR;
  }
}

#if defined(__x86_64__)

DNFT_AVX2 inline void store_row_avx2(float* row, __m256 x0, __m256 x1, __m256 va, __m256 vb, __m256 bias0, __m256 bias1,
                                     bool read_c) {
  x0 = _mm256_fmadd_ps(va, x0, bias0);
  x1 = _mm256_fmadd_ps(va, x1, bias1);
  if (read_c) {
    x0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), x0);
    x1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), x1);
  }
  _mm256_storeu_ps(row, x0);
  _mm256_storeu_ps(row + 8, x1);
}

DNFT_AVX2 void kernel_avx2(int k, const float* a, const float* b, float* c, int ldc, int m, int n, float alpha,
                           float beta, const float* bias) {
  for (int i = 0; i < m; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + static_cast<int64_t>(i) * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + static_cast<int64_t>(i) * ldc + kNR - 1), _MM_HINT_T0);
  }
  // The 6 × 16 tile written out row by row on purpose: twelve named accumulators stay in registers, which an
  // array indexed in a loop does not guarantee (the same rows repeat in DNFT_STEP and the stores below).
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define DNFT_STEP(P)                                   \
  do {                                                 \
    const __m256 b0 = _mm256_load_ps(b + (P)*kNR);     \
    const __m256 b1 = _mm256_load_ps(b + (P)*kNR + 8); \
    __m256 av = _mm256_broadcast_ss(a + (P)*kMR + 0);  \
    c00 = _mm256_fmadd_ps(av, b0, c00);                \
    c01 = _mm256_fmadd_ps(av, b1, c01);                \
    av = _mm256_broadcast_ss(a + (P)*kMR + 1);         \
    c10 = _mm256_fmadd_ps(av, b0, c10);                \
    c11 = _mm256_fmadd_ps(av, b1, c11);                \
    av = _mm256_broadcast_ss(a + (P)*kMR + 2);         \
    c20 = _mm256_fmadd_ps(av, b0, c20);                \
    c21 = _mm256_fmadd_ps(av, b1, c21);                \
    av = _mm256_broadcast_ss(a + (P)*kMR + 3);         \
    c30 = _mm256_fmadd_ps(av, b0, c30);                \
    c31 = _mm256_fmadd_ps(av, b1, c31);                \
    av = _mm256_broadcast_ss(a + (P)*kMR + 4);         \
    c40 = _mm256_fmadd_ps(av, b0, c40);                \
    c41 = _mm256_fmadd_ps(av, b1, c41);                \
    av = _mm256_broadcast_ss(a + (P)*kMR + 5);         \
    c50 = _mm256_fmadd_ps(av, b0, c50);                \
    c51 = _mm256_fmadd_ps(av, b1, c51);                \
  } while (0)
  int p = 0;
  for (; p + 4 <= k; p += 4) {
    _mm_prefetch(reinterpret_cast<const char*>(a + 8 * kMR * 4), _MM_HINT_T0);
    DNFT_STEP(0);
    DNFT_STEP(1);
    DNFT_STEP(2);
    DNFT_STEP(3);
    a += 4 * kMR;
    b += 4 * kNR;
  }
  for (; p < k; ++p) {
    DNFT_STEP(0);
    a += kMR;
    b += kNR;
  }
#undef DNFT_STEP

  if (m == kMR && n == kNR) {
    const __m256 va = _mm256_set1_ps(alpha);
    const __m256 vb = _mm256_set1_ps(beta);
    const __m256 bias0 = bias != nullptr ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 bias1 = bias != nullptr ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    const bool read_c = beta != 0.0f;
    store_row_avx2(c, c00, c01, va, vb, bias0, bias1, read_c);
    store_row_avx2(c + ldc, c10, c11, va, vb, bias0, bias1, read_c);
    store_row_avx2(c + 2 * static_cast<int64_t>(ldc), c20, c21, va, vb, bias0, bias1, read_c);
    store_row_avx2(c + 3 * static_cast<int64_t>(ldc), c30, c31, va, vb, bias0, bias1, read_c);
    store_row_avx2(c + 4 * static_cast<int64_t>(ldc), c40, c41, va, vb, bias0, bias1, read_c);
    store_row_avx2(c + 5 * static_cast<int64_t>(ldc), c50, c51, va, vb, bias0, bias1, read_c);
  } else {
    alignas(32) float acc[kMR * kNR];
    _mm256_store_ps(acc + 0 * kNR, c00);
    _mm256_store_ps(acc + 0 * kNR + 8, c01);
    _mm256_store_ps(acc + 1 * kNR, c10);
    _mm256_store_ps(acc + 1 * kNR + 8, c11);
    _mm256_store_ps(acc + 2 * kNR, c20);
    _mm256_store_ps(acc + 2 * kNR + 8, c21);
    _mm256_store_ps(acc + 3 * kNR, c30);
    _mm256_store_ps(acc + 3 * kNR + 8, c31);
    _mm256_store_ps(acc + 4 * kNR, c40);
    _mm256_store_ps(acc + 4 * kNR + 8, c41);
    _mm256_store_ps(acc + 5 * kNR, c50);
    _mm256_store_ps(acc + 5 * kNR + 8, c51);
    store_tile<kNR>(acc, c, ldc, m, n, alpha, beta, bias);
  }
}

// Transposes an 8x8 block held in eight registers (row r -> column r).
DNFT_AVX2 inline void transpose8(__m256& r0, __m256& r1, __m256& r2, __m256& r3, __m256& r4, __m256& r5, __m256& r6,
                                 __m256& r7) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r0 = _mm256_permute2f128_ps(s0, s4, 0x20);
  r1 = _mm256_permute2f128_ps(s1, s5, 0x20);
  r2 = _mm256_permute2f128_ps(s2, s6, 0x20);
  r3 = _mm256_permute2f128_ps(s3, s7, 0x20);
  r4 = _mm256_permute2f128_ps(s0, s4, 0x31);
  r5 = _mm256_permute2f128_ps(s1, s5, 0x31);
  r6 = _mm256_permute2f128_ps(s2, s6, 0x31);
  r7 = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Packs the first `full` columns (a multiple of NR) of a transposed B into NR-wide strips, 8 x 8 blocks transposed in
// registers; shared by the AVX2 and AVX-512 packers, whose strips differ only in width.
template <int NR>
DNFT_AVX2 void pack_b_transposed_strips(const float* B, int ldb, int k0, int kc, int j0, int full, float* dst) {
  const int kc8 = kc / 8 * 8;
  for (int js = 0; js < full; js += NR) {
    float* d = dst + static_cast<int64_t>(js) * kc;
    for (int h = 0; h < NR; h += 8) {
      const float* src = B + static_cast<int64_t>(j0 + js + h) * ldb + k0;
      for (int p = 0; p < kc8; p += 8) {
        __m256 r0 = _mm256_loadu_ps(src + p), r1 = _mm256_loadu_ps(src + ldb + p);
        __m256 r2 = _mm256_loadu_ps(src + 2 * static_cast<int64_t>(ldb) + p);
        __m256 r3 = _mm256_loadu_ps(src + 3 * static_cast<int64_t>(ldb) + p);
        __m256 r4 = _mm256_loadu_ps(src + 4 * static_cast<int64_t>(ldb) + p);
        __m256 r5 = _mm256_loadu_ps(src + 5 * static_cast<int64_t>(ldb) + p);
        __m256 r6 = _mm256_loadu_ps(src + 6 * static_cast<int64_t>(ldb) + p);
        __m256 r7 = _mm256_loadu_ps(src + 7 * static_cast<int64_t>(ldb) + p);
        transpose8(r0, r1, r2, r3, r4, r5, r6, r7);
        float* o = d + p * NR + h;
        _mm256_store_ps(o + 0 * NR, r0);
        _mm256_store_ps(o + 1 * NR, r1);
        _mm256_store_ps(o + 2 * NR, r2);
        _mm256_store_ps(o + 3 * NR, r3);
        _mm256_store_ps(o + 4 * NR, r4);
        _mm256_store_ps(o + 5 * NR, r5);
        _mm256_store_ps(o + 6 * NR, r6);
        _mm256_store_ps(o + 7 * NR, r7);
      }
      for (int p = kc8; p < kc; ++p) {
        for (int c = 0; c < 8; ++c) d[p * NR + h + c] = src[static_cast<int64_t>(c) * ldb + p];
      }
    }
  }
}

DNFT_AVX2 void pack_b_avx2(bool trans, const float* B, int ldb, int k0, int kc, int j0, int nc, float* dst) {
  const int full = nc / kNR * kNR;
  if (!trans) {
    for (int js = 0; js < full; js += kNR) {
      const float* src = B + static_cast<int64_t>(k0) * ldb + j0 + js;
      float* d = dst + static_cast<int64_t>(js) * kc;
      for (int p = 0; p < kc; ++p) {
        _mm256_store_ps(d + p * kNR, _mm256_loadu_ps(src + static_cast<int64_t>(p) * ldb));
        _mm256_store_ps(d + p * kNR + 8, _mm256_loadu_ps(src + static_cast<int64_t>(p) * ldb + 8));
      }
    }
  } else {
    pack_b_transposed_strips<kNR>(B, ldb, k0, kc, j0, full, dst);
  }
  if (full < nc) {
    pack_b_generic<kNR>(trans, B, ldb, k0, kc, j0 + full, nc - full, dst + static_cast<int64_t>(full) * kc);
  }
}

// The AVX-512 micro-kernel: a 14 x 32 tile of C in 28 zmm accumulators, two B vectors per step and the A values
// broadcast from memory (folded into the FMAs). The loops over the rows unroll fully, so the array stays in registers.
DNFT_AVX512 void kernel_avx512(int k, const float* a, const float* b, float* c, int ldc, int m, int n, float alpha,
                               float beta, const float* bias) {
  __m512 acc[kMR512][2];
#pragma GCC unroll 14
  for (int i = 0; i < kMR512; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + static_cast<int64_t>(i) * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + static_cast<int64_t>(i) * ldc + kNR512 - 1), _MM_HINT_T0);
    acc[i][0] = _mm512_setzero_ps();
    acc[i][1] = _mm512_setzero_ps();
  }
  for (int p = 0; p < k; ++p) {
    _mm_prefetch(reinterpret_cast<const char*>(a + 8 * kMR512), _MM_HINT_T0);
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < kMR512; ++i) {
      const __m512 av = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
    a += kMR512;
    b += kNR512;
  }
  // C = alpha·acc + bias (+ beta·C), the columns past n masked off.
  const __mmask16 k0 = lanes16(n), k1 = lanes16(n - 16);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __m512 bias0 = bias != nullptr ? _mm512_maskz_loadu_ps(k0, bias) : _mm512_setzero_ps();
  const __m512 bias1 = bias != nullptr ? _mm512_maskz_loadu_ps(k1, bias + 16) : _mm512_setzero_ps();
  const bool read_c = beta != 0.0f;
#pragma GCC unroll 14
  for (int i = 0; i < kMR512; ++i) {
    if (i >= m) break;
    float* row = c + static_cast<int64_t>(i) * ldc;
    __m512 x0 = _mm512_fmadd_ps(va, acc[i][0], bias0), x1 = _mm512_fmadd_ps(va, acc[i][1], bias1);
    if (read_c) {
      x0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, row), x0);
      x1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, row + 16), x1);
    }
    _mm512_mask_storeu_ps(row, k0, x0);
    _mm512_mask_storeu_ps(row + 16, k1, x1);
  }
}

// Packs op(A) into 14-tall strips. A row-major A (the forward and input-gradient products) is transposed in 8 x 8
// blocks in registers, rows 0-7 and then rows 8-13 (two zero rows padding the block, their lanes not stored);
// the rest (a transposed A, the last strip, the last kc % 8 columns) as pack_a<14> does.
DNFT_AVX512 void pack_a_avx512(bool trans, const float* A, int lda, int i0, int mc, int k0, int kc, float* dst) {
  const int full = trans ? 0 : mc / kMR512 * kMR512;
  const int kc8 = kc / 8 * 8;
  for (int is = 0; is < full; is += kMR512) {
    const float* src = A + static_cast<int64_t>(i0 + is) * lda + k0;
    float* d = dst + static_cast<int64_t>(is) * kc;
    for (int p = 0; p < kc8; p += 8) {
      for (int h = 0; h < kMR512; h += 8) {
        const float* s0 = src + static_cast<int64_t>(h) * lda + p;
        const int rows = std::min(8, kMR512 - h);
        __m256 r[8];
        for (int j = 0; j < 8; ++j)
          r[j] = j < rows ? _mm256_loadu_ps(s0 + static_cast<int64_t>(j) * lda) : _mm256_setzero_ps();
        transpose8(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
        const __mmask16 keep = lanes16(rows);
        for (int j = 0; j < 8; ++j) _mm512_mask_storeu_ps(d + (p + j) * kMR512 + h, keep, _mm512_castps256_ps512(r[j]));
      }
    }
    for (int p = kc8; p < kc; ++p) {
      for (int r = 0; r < kMR512; ++r) d[p * kMR512 + r] = src[static_cast<int64_t>(r) * lda + p];
    }
  }
  if (full < mc) pack_a<kMR512>(trans, A, lda, i0 + full, mc - full, k0, kc, dst + static_cast<int64_t>(full) * kc);
}

// Packs op(B) into 32-wide strips: rows of B under masks (the last strip's missing columns read as zero), or for a
// transposed B, 8 x 8 blocks transposed in registers.
DNFT_AVX512 void pack_b_avx512(bool trans, const float* B, int ldb, int k0, int kc, int j0, int nc, float* dst) {
  if (!trans) {
    for (int js = 0; js < nc; js += kNR512) {
      const __mmask16 m0 = lanes16(nc - js), m1 = lanes16(nc - js - 16);
      const float* src = B + static_cast<int64_t>(k0) * ldb + j0 + js;
      float* d = dst + static_cast<int64_t>(js) * kc;
      for (int p = 0; p < kc; ++p) {
        _mm512_store_ps(d + p * kNR512, _mm512_maskz_loadu_ps(m0, src + static_cast<int64_t>(p) * ldb));
        _mm512_store_ps(d + p * kNR512 + 16, _mm512_maskz_loadu_ps(m1, src + static_cast<int64_t>(p) * ldb + 16));
      }
    }
    return;
  }
  const int full = nc / kNR512 * kNR512;
  pack_b_transposed_strips<kNR512>(B, ldb, k0, kc, j0, full, dst);
  if (full < nc) {
    pack_b_generic<kNR512>(trans, B, ldb, k0, kc, j0 + full, nc - full, dst + static_cast<int64_t>(full) * kc);
  }
}

#endif  // __x86_64__

struct Impl {
  KernelFn kernel;
  PackAFn pack_a;
  PackBFn pack_b;
  Blocking blocking;
  const char* name;
};

Impl select_impl() {
#if defined(__x86_64__)
  if (avx512_enabled()) {
    return {kernel_avx512, pack_a_avx512, pack_b_avx512, kBlocking14x32, "avx512-14x32"};
  }
  if (avx2_enabled()) return {kernel_avx2, pack_a<kMR>, pack_b_avx2, kBlocking6x16, "avx2-fma-6x16"};
#endif
  return {kernel_generic, pack_a<kMR>, pack_b_generic<kNR>, kBlocking6x16, "generic-6x16"};
}

const Impl& impl() {
  static const Impl selected = select_impl();
  return selected;
}

// 64-byte aligned scratch that only grows; one per thread, so pool workers keep theirs across calls.
class Scratch {
 public:
  ~Scratch() { release(); }
  float* get(size_t floats) {
    if (floats > capacity_) {
      release();
      data_ = static_cast<float*>(::operator new(floats * sizeof(float), std::align_val_t(64)));
      capacity_ = floats;
    }
    return data_;
  }

 private:
  void release() {
    if (data_ != nullptr) ::operator delete(data_, std::align_val_t(64));
    data_ = nullptr;
    capacity_ = 0;
  }
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

inline int round_up(int x, int to) { return (x + to - 1) / to * to; }

// Computes the block C[m0:m1, n0:n1] with the full blocked loop nest.
void gemm_block(const GemmArgs& p, int m0, int m1, int n0, int n1) {
  thread_local Scratch a_scratch, b_scratch;
  const Impl& im = impl();
  const Blocking& bk = im.blocking;
  const int M = m1 - m0, N = n1 - n0;
  const int kc_max = std::min(p.K, bk.kc);
  const int mc_max = std::min(round_up(M, bk.mr), bk.mc);
  const int nc_max = std::min(round_up(N, bk.nr), bk.nc);
  float* apack = a_scratch.get(static_cast<size_t>(mc_max) * kc_max);
  float* bpack = b_scratch.get(static_cast<size_t>(nc_max) * kc_max);

  for (int jc = n0; jc < n1; jc += bk.nc) {
    const int nc = std::min(bk.nc, n1 - jc);
    for (int pc = 0; pc < p.K; pc += bk.kc) {
      const int kc = std::min(bk.kc, p.K - pc);
      const bool first = pc == 0;
      const float beta = first ? p.beta : 1.0f;
      im.pack_b(p.transB, p.B, p.ldb, pc, kc, jc, nc, bpack);
      for (int ic = m0; ic < m1; ic += bk.mc) {
        const int mc = std::min(bk.mc, m1 - ic);
        im.pack_a(p.transA, p.A, p.lda, ic, mc, pc, kc, apack);
        for (int jr = 0; jr < nc; jr += bk.nr) {
          const int nr = std::min(bk.nr, nc - jr);
          const float* bp = bpack + static_cast<int64_t>(jr) * kc;
          const float* bias = first && p.bias != nullptr ? p.bias + jc + jr : nullptr;
          for (int ir = 0; ir < mc; ir += bk.mr) {
            const int mr = std::min(bk.mr, mc - ir);
            float* c = p.C + static_cast<int64_t>(ic + ir) * p.ldc + jc + jr;
            im.kernel(kc, apack + static_cast<int64_t>(ir) * kc, bp, c, p.ldc, mr, nr, p.alpha, beta, bias);
          }
        }
      }
    }
  }
}

// C = beta * C + bias, for the degenerate alpha == 0 or K == 0 cases.
void scale_c(int M, int N, float beta, float* C, int ldc, const float* bias) {
  for (int i = 0; i < M; ++i) {
    float* row = C + static_cast<int64_t>(i) * ldc;
    for (int j = 0; j < N; ++j) {
      float v = beta == 0.0f ? 0.0f : beta * row[j];
      if (bias != nullptr) v += bias[j];
      row[j] = v;
    }
  }
}

}  // namespace

const char* sgemm_kernel_name() { return impl().name; }

void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
           float beta, float* C, int ldc, const float* bias) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc, bias);
    return;
  }
  const GemmArgs p{transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias};
  ThreadPool& pool = global_pool();
  const int64_t flops = static_cast<int64_t>(M) * N * K;
  if (pool.size() == 1 || flops < kParallelMinFlops) {
    gemm_block(p, 0, M, 0, N);
    return;
  }
  // Split the larger of M and N, in whole register blocks: each thread then re-packs only the smaller operand.
  const Blocking& bk = impl().blocking;
  if (N >= M) {
    const int units = (N + bk.nr - 1) / bk.nr;
    pool.parallel_for(units, [&](int64_t begin, int64_t end, int) {
      gemm_block(p, 0, M, static_cast<int>(begin) * bk.nr, std::min(N, static_cast<int>(end) * bk.nr));
    });
  } else {
    const int units = (M + bk.mr - 1) / bk.mr;
    pool.parallel_for(units, [&](int64_t begin, int64_t end, int) {
      gemm_block(p, static_cast<int>(begin) * bk.mr, std::min(M, static_cast<int>(end) * bk.mr), 0, N);
    });
  }
}

}  // namespace dnft::cpu
