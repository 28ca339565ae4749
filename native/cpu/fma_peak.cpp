// A loop of independent FMAs: twelve accumulators, more than an FMA's latency times the FMA units of any current
// core (4 cycles × 2 units), so the units never wait; the operands stay in registers, so nothing waits on memory.
#include "cpu/fma_peak.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "core/common.h"

namespace dnft::cpu {

namespace {

constexpr int kAccumulators = 12;

// Each returns a value that depends on every FMA, so the compiler keeps them all.
#if defined(__x86_64__)
DNFT_AVX2 float fma_loop_avx2(int64_t iters) {
  __m256 acc[kAccumulators];
  for (int j = 0; j < kAccumulators; ++j) acc[j] = _mm256_set1_ps(static_cast<float>(j));
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kAccumulators; ++j) acc[j] = _mm256_fmadd_ps(acc[j], x, y);
  }
  __m256 sum = acc[0];
  for (int j = 1; j < kAccumulators; ++j) sum = _mm256_add_ps(sum, acc[j]);
  return _mm256_cvtss_f32(sum);
}

DNFT_AVX512 float fma_loop_avx512(int64_t iters) {
  __m512 acc[kAccumulators];
  for (int j = 0; j < kAccumulators; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kAccumulators; ++j) acc[j] = _mm512_fmadd_ps(acc[j], x, y);
  }
  __m512 sum = acc[0];
  for (int j = 1; j < kAccumulators; ++j) sum = _mm512_add_ps(sum, acc[j]);
  return _mm512_reduce_add_ps(sum);
}
#endif

// The best FLOP/s of `runs` runs of `iters` iterations on the calling thread.
double best_rate(CpuKernels kernels, int64_t iters, int runs, std::atomic<float>* sink) {
  const double flops = 2.0 * (kernels == CpuKernels::kAvx512 ? 16 : 8) * kAccumulators * iters;
  double best = 0.0;
  for (int r = 0; r < runs; ++r) {
    const auto start = std::chrono::steady_clock::now();
#if defined(__x86_64__)
    *sink = *sink + (kernels == CpuKernels::kAvx512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters));
#endif
    best = std::max(best, flops / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

double fma_peak_flops(CpuKernels kernels, int threads, double seconds) {
  if (kernels == CpuKernels::kGeneric) {
    throw Error(Error::Kind::kRange, "fma peak: the generic path has no vector FMA to measure; ask for avx2 or avx512");
  }
  if (!cpu_supports(kernels)) {
    throw Error(Error::Kind::kBackend,
                std::string("fma peak: this CPU or its OS lacks the ") + cpu_kernels_name(kernels) + " instructions");
  }
  if (threads < 1)
    throw Error(Error::Kind::kRange, "fma peak: threads must be at least 1, got " + std::to_string(threads));
  // Runs of about 1 ms, each thread keeping its fastest: on a shared machine some run without being preempted,
  // where one long run would count the time other processes took. The threads start together and run at the same
  // time (so cores that share FMA units count once); the peak is the sum of their best rates.
  constexpr int64_t kIters = 1 << 19;  // 1 to 2 ms: 12 FMAs take 6 cycles (AVX2) or 6 to 12 (AVX-512)
  const int runs = std::max(5, static_cast<int>(seconds / 0.001));
  std::atomic<float> sink{0.0f};
  std::atomic<int> ready{0};
  std::vector<double> rates(threads, 0.0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();
      rates[t] = best_rate(kernels, kIters, runs, &sink);
    });
  }
  for (std::thread& t : pool) t.join();
  double total = 0.0;
  for (double r : rates) total += r;
  return total;
}

}  // namespace dnft::cpu
