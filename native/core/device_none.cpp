#include "core/device.h"

namespace dnft {

DeviceInfo device_info() {
  DeviceInfo info;
  info.reason = "this binary was built without CUDA (DNFT_CUDA=OFF or no nvcc at build time)";
  return info;
}

}  // namespace dnft
