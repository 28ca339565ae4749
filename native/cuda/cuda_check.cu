#include <string>

#include "cuda/cuda_check.cuh"

namespace dnft::cuda {

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  // Clear a non-sticky error so that later calls start clean; a sticky one (a fault in a kernel) stays, and every
  // later call on this device reports it, which is what the user needs to see.
  cudaGetLastError();
  std::string message =
      std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ")";
  if (status == cudaErrorMemoryAllocation) message += "; the GPU is out of memory";
  throw Error(Error::Kind::kBackend, message);
}

void check_launch(const char* what) { check(cudaGetLastError(), what); }

}  // namespace dnft::cuda
