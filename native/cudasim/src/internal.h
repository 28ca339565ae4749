// What the parts of the simulated GPU's runtime share: the configuration, a queued kernel launch, and the fault
// report a kernel run returns.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "cudasim.h"

namespace cudasim {

struct Config {
  int devices = 1;
  int cc_major = 8, cc_minor = 0;
  size_t memory = size_t{16} << 30;
  Schedule schedule = Schedule::kRoundRobin;
  uint64_t seed = 0;
  bool strict_free = false;  // a cudaFree of memory that work the host has not waited for may still use is a fault
  bool racecheck = true;     // shared-memory write sets are compared between barriers
  bool abort_on_fault = false;
};

// The configuration (read from the environment on first use; the schedule line is printed then).
Config config();

struct KernelLaunch {
  std::string what;
  dim3 grid, block;
  std::unique_ptr<KernelBody> body;
  int cc_major = 0, cc_minor = 0;
};

struct Fault {
  cudaError_t code = cudaSuccess;
  std::string message;
};

// Runs every block of the launch on the calling OS thread, its CUDA threads as fibers, in the order the schedule
// and seed give; returns the first fault (code cudaSuccess when there was none).
Fault run_kernel(const KernelLaunch& launch, Schedule schedule, uint64_t seed);

// Whether [p, p + bytes) lies inside one live device allocation.
bool is_device_memory(const void* p, size_t bytes);

// "file:line" without the directories.
std::string site(const char* file, int line);

}  // namespace cudasim
