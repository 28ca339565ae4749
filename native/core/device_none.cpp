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

std::shared_ptr<Communicator> create_nccl_communicator(Backend&, const NcclSetup&) {
  throw Error(Error::Kind::kBackend, std::string("NCCL needs a CUDA build: ") + kNoCuda);
}

std::string nccl_version() { throw Error(Error::Kind::kBackend, std::string("NCCL needs a CUDA build: ") + kNoCuda); }

}  // namespace dnft
