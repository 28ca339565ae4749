#include "core/math/philox.h"
#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

namespace {
constexpr int64_t kRandomGrain = 4096;
}

void CpuBackend::fill_normal(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float stddev) {
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) dst[i] = stddev * philox_normal(seed, stream, offset + i);
      },
      kRandomGrain);
}

void CpuBackend::fill_uniform(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float low,
                              float high) {
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) dst[i] = low + (high - low) * philox_uniform(seed, stream, offset + i);
      },
      kRandomGrain);
}

}  // namespace dnft::cpu
