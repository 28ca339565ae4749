// The CUDA backend's lifetime and memory, the scratch of its reductions, and create_cuda_backend.
#include <memory>
#include <string>

#include "cuda/cuda_backend.cuh"

namespace dnft {

namespace cuda {

Scratch::~Scratch() {
  if (ptr_ != nullptr) cudaFree(ptr_);
}

void* Scratch::get(size_t bytes) {
  if (bytes <= bytes_) return ptr_;
  if (ptr_ != nullptr) {
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (scratch)");
    check(cudaFree(ptr_), "cudaFree (scratch)");
  }
  ptr_ = nullptr;
  bytes_ = 0;
  check(cudaMalloc(&ptr_, bytes), "cudaMalloc (scratch)");
  bytes_ = bytes;
  return ptr_;
}

CudaBackend::CudaBackend(const CudaOptions& options) : device_(options.device) {
  int count = 0;
  check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device_ < 0 || device_ >= count) {
    throw Error(Error::Kind::kRange,
                "CUDA device " + std::to_string(device_) + " does not exist (" + std::to_string(count) + " visible)");
  }
  check(cudaSetDevice(device_), "cudaSetDevice");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  scratch_.attach(stream_);
  ctx_ = {stream_, choose_gemm_kernel(options.precision, prop.major), &scratch_};
}

CudaBackend::~CudaBackend() {
  // Destructors cannot report errors: wait for queued work, then release the stream, ignoring failures.
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_);
  cudaStreamDestroy(stream_);
}

void CudaBackend::activate() { check(cudaSetDevice(device_), "cudaSetDevice"); }

void* CudaBackend::alloc(size_t bytes) {
  void* ptr = nullptr;
  const cudaError_t status = cudaMalloc(&ptr, bytes > 0 ? bytes : 1);  // non-null even for empty buffers
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw Error(Error::Kind::kBackend, "CUDA out of memory allocating " + std::to_string(bytes) + " bytes on device " +
                                           std::to_string(device_) + ": " + cudaGetErrorString(status));
  }
  return ptr;
}

// Called from destructors: no throw. Buffers die while kernels that read them may still be queued (a temporary of
// one op, LoRA's merge); the stream drains first rather than relying on cudaFree's implicit wait for the device.
void CudaBackend::release(void* ptr) {
  cudaStreamSynchronize(stream_);
  cudaFree(ptr);
}

void CudaBackend::copy_to_device(void* dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  // Host memory is pageable and may be reused by the caller right after: wait for the copy.
  check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_), "copy to device");
  synchronize();
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy to host");
  synchronize();
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "device copy");
}

void CudaBackend::synchronize() { check(cudaStreamSynchronize(stream_), "a kernel on the model's stream"); }

}  // namespace cuda

std::unique_ptr<Backend> create_cuda_backend(const CudaOptions& options) {
  const DeviceInfo info = device_info();
  if (!info.cuda_available) throw Error(Error::Kind::kBackend, "device 'cuda' is not available: " + info.reason);
  return std::make_unique<cuda::CudaBackend>(options);
}

}  // namespace dnft
