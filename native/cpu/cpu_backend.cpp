// The CPU backend's memory: 64-byte aligned host allocations and plain copies.
#include "cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace dnft {

namespace cpu {

void* CpuBackend::alloc(size_t bytes) {
  // 64-byte alignment for the vector kernels; aligned_alloc needs a multiple of the alignment.
  void* ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  if (ptr == nullptr) throw Error(Error::Kind::kBackend, "out of host memory allocating " + std::to_string(bytes));
  return ptr;
}

void CpuBackend::release(void* ptr) { std::free(ptr); }

void CpuBackend::copy_to_device(void* dst, const void* host_src, size_t bytes) { std::memcpy(dst, host_src, bytes); }

void CpuBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) { std::memcpy(host_dst, src, bytes); }

void CpuBackend::copy(void* dst, const void* src, size_t bytes) { std::memmove(dst, src, bytes); }

void CpuBackend::fill(float* dst, float value, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = value;
}

void CpuBackend::synchronize() {}

}  // namespace cpu

Backend& cpu_backend() {
  static cpu::CpuBackend backend;
  return backend;
}

}  // namespace dnft
