// The simulated GPU's own controls, beyond the CUDA API (docs/gpu.md, "The simulated GPU"): for its tests
// (native/cudasim/tests) and for harnesses that drive it. The same settings come from the environment at start-up:
// CUDASIM_SCHEDULE, CUDASIM_CC, CUDASIM_DEVICES, CUDASIM_MEM, CUDASIM_FAIL, CUDASIM_STRICT_FREE, CUDASIM_RACECHECK,
// CUDASIM_ABORT.
#pragma once

#include <cstdint>
#include <string>

namespace cudasim {

// The order of a block's threads between barriers and of a grid's blocks.
enum class Schedule { kRoundRobin, kReverse, kRandom };

// "rr", "reverse" or "random:SEED".
std::string schedule_name();
void set_schedule(Schedule schedule, uint64_t seed = 0);

// The compute capability every simulated device reports (8.0 takes the WMMA GEMM, 7.5 the SIMT one).
void set_compute_capability(int major, int minor);

// Strict free: a cudaFree of memory that queued work the host has not waited for may still use is a fault (CUDA's
// cudaFree waits for the device, so such code is correct but relies on that wait).
void set_strict_free(bool strict);

// Makes the n-th next call (n >= 1) of `api` fail: a CUDA function's name, "launch" (a launch error) or "kernel" (a
// fault while the kernel runs). As CUDASIM_FAIL=api:n, which counts from start-up.
void fail_call(const std::string& api, int n);

// The report of the last fault a kernel, a barrier, a warp collective or a strict free raised ("" when none).
std::string last_fault();

// Clears every device's sticky error and the last fault: a test's way to go on after a deliberate fault (CUDA
// itself offers only cudaDeviceReset).
void clear_faults();

}  // namespace cudasim
