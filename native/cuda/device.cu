// Device discovery. cudart is linked statically, so on a machine without a driver cudaGetDeviceCount fails with
// an error code (no crash) and the addon stays on the CPU backend.
#include <cuda_runtime.h>

#include "core/device.h"

namespace dnft {

DeviceInfo device_info() {
  DeviceInfo info;
  info.compiled_with_cuda = true;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    info.reason = std::string("no usable CUDA device: ") + cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return info;
  }
  info.device_count = count;
  if (count == 0) {
    info.reason = "no CUDA device is visible";
    return info;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) info.device_name = prop.name;
  info.cuda_available = true;
  return info;
}

}  // namespace dnft
