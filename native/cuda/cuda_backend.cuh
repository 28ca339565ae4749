// The CUDA backend: device memory and one stream per instance (one instance per model). Each operation of
// core/backend_ops.def is defined beside its kernels, one file per op family with the names of native/cpu
// (cuda/linear.cu, cuda/adaln.cu, …), and memory in cuda/cuda_backend.cu. Every call queues work on the stream;
// copies to the host and the operations returning a value wait for it, and synchronize() waits for the rest and
// reports a fault inside a kernel as a JS-visible error.
#pragma once

#include "core/backend.h"
#include "core/device.h"
#include "cuda/context.cuh"

namespace dnft::cuda {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaOptions& options);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  void activate() override;
  bool ops_fail_midway() const override { return true; }
  // The stream every operation of this backend queues on, and its device (for cuda/nccl_communicator.cu).
  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }

#define DNFT_BACKEND_OP(result, op, params) result op params override;
#include "core/backend_ops.def"
#undef DNFT_BACKEND_OP

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  Scratch scratch_;
  Context ctx_{};
};

}  // namespace dnft::cuda
