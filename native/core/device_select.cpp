// Device-request resolution and precision names: backend-independent, built in every configuration.
#include "core/device.h"

namespace dnft {

const char* precision_name(Precision precision) { return precision == Precision::kFp32 ? "fp32" : "tf32"; }

Precision parse_precision(const std::string& name) {
  if (name == "tf32") return Precision::kTf32;
  if (name == "fp32") return Precision::kFp32;
  throw Error(Error::Kind::kRange, "precision must be 'tf32' or 'fp32', got '" + name + "'");
}

int required_driver_branch(int runtime_version) {
  const int major = runtime_version / 1000;
  return major >= 13 ? 580 : major == 12 ? 525 : 450;
}

std::string cuda_version_name(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

std::string cuda_failure_reason(const std::string& error, bool insufficient_driver, const DeviceInfo& info) {
  const std::string needs = "this binary's CUDA " + cuda_version_name(info.runtime_version) +
                            " runtime needs an NVIDIA driver r" + std::to_string(info.required_driver) + " or newer";
  if (info.driver_version.empty() && info.driver_cuda_version == 0) return "no NVIDIA driver found (" + needs + ")";
  std::string reason = "no usable CUDA device: " + error;
  if (insufficient_driver) {
    reason += " (" + needs + "; found " +
              (info.driver_version.empty() ? std::string("an older one") : info.driver_version) + ")";
  }
  return reason;
}

DeviceChoice choose_device(const std::string& request, const DeviceInfo& info) {
  if (request == "cpu") return DeviceChoice::kCpu;
  if (request == "auto") return info.cuda_available ? DeviceChoice::kCuda : DeviceChoice::kCpu;
  if (request == "cuda") {
    if (!info.cuda_available) {
      throw Error(Error::Kind::kBackend, "device 'cuda' is not available: " + info.reason +
                                             "; device 'auto' uses the GPU when there is one and the CPU otherwise");
    }
    return DeviceChoice::kCuda;
  }
  throw Error(Error::Kind::kRange, "device must be 'cpu', 'cuda' or 'auto', got '" + request + "'");
}

}  // namespace dnft
