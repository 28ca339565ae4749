// What accelerator this build and machine offer, and how to open a backend on it. Implemented by cuda/device.cu and
// cuda/cuda_backend.cu in CUDA builds and by core/device_none.cpp otherwise. No CUDA header here: the core, the
// addon and the C++ tests use this file whether or not the build has CUDA.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/backend.h"
#include "core/communicator.h"

namespace dnft {

struct DeviceInfo {
  bool compiled_with_cuda = false;
  bool cuda_available = false;  // compiled with CUDA, a driver is present and at least one GPU is visible
  int device_count = 0;
  std::string device_name;  // of device 0, when available
  std::string reason;       // why CUDA is not available, when it is not
  // CUDA builds only (0 / empty otherwise): the runtime linked in (CUDART_VERSION, e.g. 13000), the oldest NVIDIA
  // driver branch that runtime accepts, the CUDA version the installed driver supports (0 without a driver) and
  // the installed driver's own version (from /proc/driver/nvidia/version on Linux; empty when unreadable).
  int runtime_version = 0;
  int required_driver = 0;
  int driver_cuda_version = 0;
  std::string driver_version;
};

DeviceInfo device_info();

// The oldest NVIDIA driver branch that a CUDA runtime of this version accepts (minor-version compatibility: 13.x
// needs r580, 12.x r525, 11.x r450).
int required_driver_branch(int runtime_version);

// A CUDA version number as CUDA spells it: 13000 -> "13.0", 12080 -> "12.8".
std::string cuda_version_name(int version);

// Why CUDA is unusable when counting the devices failed with the runtime's `error` text (cudaGetErrorString):
// "no NVIDIA driver found" when the machine has none at all (no driver version and no CUDA version from a driver,
// whatever code the runtime gave), else the error, with the driver the runtime needs when `insufficient_driver`.
// `info` carries the runtime and driver versions already read.
std::string cuda_failure_reason(const std::string& error, bool insufficient_driver, const DeviceInfo& info);

// The arithmetic of the GEMMs on a GPU: TF32 tensor cores with FP32 accumulation (the default, ~1e-3 relative), or
// FP32 throughout (matches the CPU to ~1e-6). The other kernels are FP32 (FP64 sums) in both modes.
enum class Precision { kTf32, kFp32 };

const char* precision_name(Precision precision);
// Parses 'tf32' or 'fp32'; throws kRange naming the value otherwise.
Precision parse_precision(const std::string& name);

struct CudaOptions {
  int device = 0;
  Precision precision = Precision::kTf32;
};

// A CUDA backend on one device with its own stream: one per model. Throws kBackend, with the reason, when the build
// has no CUDA or no usable device is present.
std::unique_ptr<Backend> create_cuda_backend(const CudaOptions& options);

// How a model on the GPU sums its gradient over the ranks with NCCL (cuda/nccl_communicator.cu,
// docs/distributed.md). `broadcast` copies rank 0's `bytes` bytes at `data` to every rank (the MPI bridge: it
// carries NCCL's rendezvous token); `host` sums the statistics, which stay in host memory.
struct NcclSetup {
  int rank = 0;
  int size = 1;
  double timeout = 0;  // seconds an NCCL operation may take before it is aborted (0: never)
  std::function<void(void* data, size_t bytes)> broadcast;
  std::shared_ptr<Communicator> host;
};

// A communicator of `backend`'s device memory over NCCL, every rank calling it at once. Throws kBackend when NCCL
// or CUDA is missing and kDistributed when NCCL fails or times out.
std::shared_ptr<Communicator> create_nccl_communicator(Backend& backend, const NcclSetup& setup);

// The NCCL version ("2.21.5"), opening libnccl.so.2 ($DNFT_NCCL_LIBRARY) on first use; throws kBackend naming the
// library and the fix when it cannot be opened.
std::string nccl_version();

// The backend a device request resolves to: "cpu"; "cuda" (throws kBackend when unavailable); "auto" (CUDA when
// available, else the CPU). Pure logic over `info`, so the choice is testable on any machine.
enum class DeviceChoice { kCpu, kCuda };
DeviceChoice choose_device(const std::string& request, const DeviceInfo& info);

}  // namespace dnft
