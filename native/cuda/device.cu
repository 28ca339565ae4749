// Device discovery. cudart is linked statically, so on a machine without a driver cudaGetDeviceCount fails with
// an error code (no crash) and the addon stays on the CPU backend.
#include <cuda_runtime.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "core/device.h"

namespace dnft {

namespace {

// The kernel module's version, e.g. "580.65.06", from "NVRM version: NVIDIA UNIX ... Kernel Module  580.65.06  ...".
std::string installed_driver_version() {
  std::ifstream file("/proc/driver/nvidia/version");
  std::string line;
  if (!std::getline(file, line)) return "";
  const size_t at = line.find("Kernel Module");
  if (at == std::string::npos) return "";
  std::istringstream rest(line.substr(at + std::strlen("Kernel Module")));
  std::string version;
  rest >> version;
  return version;
}

}  // namespace

DeviceInfo device_info() {
  DeviceInfo info;
  info.compiled_with_cuda = true;
  info.runtime_version = CUDART_VERSION;
  info.required_driver = required_driver_branch(CUDART_VERSION);
  if (cudaDriverGetVersion(&info.driver_cuda_version) != cudaSuccess) info.driver_cuda_version = 0;
  info.driver_version = installed_driver_version();
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    info.reason = cuda_failure_reason(cudaGetErrorString(status), status == cudaErrorInsufficientDriver, info);
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
