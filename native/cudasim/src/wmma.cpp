// mma.h's functions: each lane hands its operands to the warp collective (native/cudasim/src/executor.cpp).
#include <mma.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "executor.h"

namespace nvcuda::wmma {

float __float_to_tf32(float value) {
  if (std::isnan(value)) return value;
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  bits = (bits + 0x1000u) & ~uint32_t{0x1FFF};  // ties away from zero: the magnitude rounds up at exactly half
  std::memcpy(&value, &bits, sizeof bits);
  return value;
}

void load_matrix_sync(FragmentA& a, const float* ptr, unsigned ldm, const char* file, int line) {
  cudasim::warp_collective({cudasim::WarpOp::kLoadA, file, line, ptr, ldm, 0, a.x, nullptr, nullptr, nullptr});
}

void load_matrix_sync(FragmentB& b, const float* ptr, unsigned ldm, const char* file, int line) {
  cudasim::warp_collective({cudasim::WarpOp::kLoadB, file, line, ptr, ldm, 0, b.x, nullptr, nullptr, nullptr});
}

void store_matrix_sync(float* ptr, const FragmentC& c, unsigned ldm, layout_t layout, const char* file, int line) {
  cudasim::warp_collective(
      {cudasim::WarpOp::kStore, file, line, ptr, ldm, layout == mem_row_major ? 0 : 1, nullptr, nullptr, nullptr, c.x});
}

void mma_sync(FragmentC& d, const FragmentA& a, const FragmentB& b, const FragmentC& c, const char* file, int line) {
  cudasim::warp_collective({cudasim::WarpOp::kMma, file, line, nullptr, 0, 0, d.x, a.x, b.x, c.x});
}

}  // namespace nvcuda::wmma
