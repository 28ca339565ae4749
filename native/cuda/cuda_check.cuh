// Every CUDA runtime call and kernel launch is checked; a failure becomes a dnft::Error of kind kBackend carrying
// the CUDA error string, which the addon turns into a JS BackendError.
#pragma once

#include <cuda_runtime.h>

#include "core/common.h"

namespace dnft::cuda {

// Throws kBackend "CUDA error in <what>: <description> (<name>)" unless status is cudaSuccess.
void check(cudaError_t status, const char* what);

// Checks the launch of the kernel just queued (configuration errors; faults inside it surface at synchronisation).
void check_launch(const char* what);

}  // namespace dnft::cuda
