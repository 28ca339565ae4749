// What accelerator this build and machine offer. Implemented by cuda/device.cu in CUDA builds and by
// core/device_none.cpp otherwise.
#pragma once

#include <string>

namespace dnft {

struct DeviceInfo {
  bool compiled_with_cuda = false;
  bool cuda_available = false;  // compiled with CUDA, a driver is present and at least one GPU is visible
  int device_count = 0;
  std::string device_name;  // of device 0, when available
  std::string reason;       // why CUDA is not available, when it is not
};

DeviceInfo device_info();

}  // namespace dnft
