// The measured FMA throughput of this CPU, the ceiling a GEMM's FLOP rate is judged against (bench/run.ts).
#pragma once

#include "cpu/simd.h"

namespace dnft::cpu {

// FLOP/s of a loop of independent vector FMAs (no loads, no dependency stalls) on `threads` threads at once, with
// the vectors of `kernels` (8 floats for avx2, 16 for avx512), measured over about `seconds`. Throws Error
// (kBackend) for generic or a path this CPU lacks, Error(kRange) for threads < 1.
double fma_peak_flops(CpuKernels kernels, int threads, double seconds);

}  // namespace dnft::cpu
