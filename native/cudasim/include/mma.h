// The simulated GPU's WMMA (docs/gpu.md, "The simulated GPU"): the TF32 m16n16k8 fragments native/cuda/gemm.cu
// uses, row-major a and b with a float accumulator, and nothing more (any other shape, type or layout has no
// definition and fails to compile). load, store and mma are warp collectives that the runtime checks (a full warp
// at one call site with the same pointer and ldm, a 32-byte aligned pointer, ldm a multiple of 4 floats, a
// simulated compute capability of 8.0 or more) and performs on the SM80 element map with exact TF32 products and
// FP32 accumulation.
#pragma once

#include <cuda_runtime.h>

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment;

template <>
class fragment<matrix_a, 16, 16, 8, precision::tf32, row_major> {
 public:
  static constexpr int num_elements = 4;
  float x[num_elements];
};

template <>
class fragment<matrix_b, 16, 16, 8, precision::tf32, row_major> {
 public:
  static constexpr int num_elements = 4;
  float x[num_elements];
};

template <>
class fragment<accumulator, 16, 16, 8, float, void> {
 public:
  static constexpr int num_elements = 8;
  float x[num_elements];
};

using FragmentA = fragment<matrix_a, 16, 16, 8, precision::tf32, row_major>;
using FragmentB = fragment<matrix_b, 16, 16, 8, precision::tf32, row_major>;
using FragmentC = fragment<accumulator, 16, 16, 8, float, void>;

// Round to TF32 as cvt.rna.tf32.f32 does: to nearest, ties away from zero, the 13 low bits cleared; NaN stays NaN.
float __float_to_tf32(float value);

template <typename Fragment>
void fill_fragment(Fragment& f, float value) {
  for (float& e : f.x) e = value;
}

void load_matrix_sync(FragmentA& a, const float* ptr, unsigned ldm, const char* file = __builtin_FILE(),
                      int line = __builtin_LINE());
void load_matrix_sync(FragmentB& b, const float* ptr, unsigned ldm, const char* file = __builtin_FILE(),
                      int line = __builtin_LINE());
void store_matrix_sync(float* ptr, const FragmentC& c, unsigned ldm, layout_t layout,
                       const char* file = __builtin_FILE(), int line = __builtin_LINE());
void mma_sync(FragmentC& d, const FragmentA& a, const FragmentB& b, const FragmentC& c,
              const char* file = __builtin_FILE(), int line = __builtin_LINE());

}  // namespace nvcuda::wmma
