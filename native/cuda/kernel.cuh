// The one way a kernel is launched and the one way shared memory is declared in native/cuda, so that the same
// sources run on a GPU (nvcc: exactly `<<<>>>` and `__shared__`) and on the simulated GPU of the DNFT_CUDA=SIM test
// build (native/cudasim, docs/gpu.md), which must see every launch and every shared array.
#pragma once

#include <cuda_runtime.h>

#include "cuda/cuda_check.cuh"

namespace dnft::cuda {

// Queues kernel<<<grid, block, shared_bytes, stream>>>(args...) and checks the launch (check_launch(what)).
template <typename... Params, typename... Args>
void launch(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            cudaStream_t stream, Args... args) {
#if defined(DNFT_CUDA_SIM)
  cudasim::launch(what, kernel, grid, block, shared_bytes, stream, args...);
#else
  // clang-format would split the closing chevrons here.
  // clang-format off
  kernel<<<grid, block, shared_bytes, stream>>>(args...);
  // clang-format on
#endif
  check_launch(what);
}

}  // namespace dnft::cuda

// A block's shared array `type name[count]`, aligned to `align` bytes.
#if defined(DNFT_CUDA_SIM)
#define DNFT_SHARED(type, name, count, align)    \
  static ::cudasim::SharedTag name##_shared_tag; \
  type* const name = static_cast<type*>(         \
      ::cudasim::shared_array(&name##_shared_tag, sizeof(type) * (count), (align), #name, __FILE__, __LINE__))
#else
#define DNFT_SHARED(type, name, count, align) \
  __shared__ __align__(align)                 \
  type name[count]
#endif
