// The calls from kernel code into the executor (native/cudasim/src/executor.cpp) that no public header declares:
// the warp collectives behind mma.h.
#pragma once

namespace cudasim {

enum class WarpOp { kLoadA, kLoadB, kStore, kMma };

// One lane's part of a warp collective: where it is called, the memory operand (ptr, ldm, layout 0 for row-major)
// and the fragments (out is written; a, b and c are read).
struct WarpCall {
  WarpOp op;
  const char* file;
  int line;
  const void* ptr;
  unsigned ldm;
  int layout;
  float* out;
  const float* a;
  const float* b;
  const float* c;
};

// Waits for the warp's 32 lanes to reach the same call with the same operands, then performs it for all of them.
void warp_collective(const WarpCall& call);

}  // namespace cudasim
