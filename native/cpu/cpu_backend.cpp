// The CPU backend's memory: 64-byte aligned host allocations and plain copies.
#include "cpu/cpu_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

namespace dnft {

namespace cpu {

namespace {

// Allocations from this size up are checked against the memory the system has available.
constexpr size_t kCheckedBytes = size_t{64} << 20;
// Allocations from this size up are aligned to, and advised onto, transparent huge pages.
constexpr size_t kHugePageBytes = size_t{2} << 20;

// The memory the system can give without swapping: MemAvailable of /proc/meminfo where there is one, else the
// physical memory.
size_t available_host_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  size_t kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") return kib * 1024;
    meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : SIZE_MAX;
}

}  // namespace

void* CpuBackend::alloc(size_t bytes) {
  // An allocation above the available memory would succeed on an overcommitting system and then push the machine
  // into swap or the OOM killer as it is filled: refuse it before (e.g. the workspace of a huge batch).
  if (bytes >= kCheckedBytes) {
    const size_t available = available_host_bytes();
    if (bytes > available)
      throw Error(Error::Kind::kBackend, "out of host memory allocating " + std::to_string(bytes) + " bytes (" +
                                             std::to_string(available) + " available)");
  }
  // 64-byte alignment for the vector kernels, and 64 bytes to spare; aligned_alloc needs a multiple of the alignment.
  // Large buffers (the parameter sets, gradient and moments) go on 2 MiB pages where the kernel allows it: the GEMM's
  // packing walks a weight matrix's rows thousands of floats apart, one 4 KiB page per row, and a config-M step's
  // passes over these buffers took a fifth less time on 2 MiB pages (bench/NOTES.md).
  const size_t align = bytes >= kHugePageBytes ? kHugePageBytes : 64;
  const size_t size = (bytes + 64 + align - 1) / align * align;
  void* ptr = std::aligned_alloc(align, size);
  if (ptr == nullptr) throw Error(Error::Kind::kBackend, "out of host memory allocating " + std::to_string(bytes));
#if defined(MADV_HUGEPAGE)
  if (align == kHugePageBytes) madvise(ptr, size, MADV_HUGEPAGE);  // advice only: 4 KiB pages where it is refused
#endif
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
