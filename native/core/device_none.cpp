#include "core/device.h"

namespace dnft {

namespace {
constexpr const char* kNoCuda = "this binary was built without CUDA (DNFT_CUDA=OFF or no nvcc at build time)";
}

DeviceInfo device_info() {
  DeviceInfo info;
  info.reason = kNoCuda;
  return info;
}

std::unique_ptr<Backend> create_cuda_backend(const CudaOptions&) {
  throw Error(Error::Kind::kBackend, std::string("device 'cuda' is not available: ") + kNoCuda);
}

}  // namespace dnft
