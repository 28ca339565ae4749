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

float fma_loop(CpuKernels kernels, int64_t iters) {
#if defined(__x86_64__)
  return kernels == CpuKernels::kAvx512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
#else
  (void)kernels;
  (void)iters;
  return 0.0f;
#endif
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
  // Rounds of short runs (20 to 40 µs), all threads starting each round together; a round's rate is its FLOPs over
  // the time from the first start to the last end, and the peak is the best round's, over about `seconds`. On a shared
  // machine some rounds run with no thread preempted, where one long run would count the time other processes took; and
  // only threads that truly ran at once count (cores that share FMA units are not counted twice). The threads spin
  // between rounds rather than yield, so that once all of them are running they stay so for many rounds.
  constexpr int64_t kIters = 1 << 13;  // 12 FMAs per iteration, 6 to 12 cycles
  using Clock = std::chrono::steady_clock;
  const int max_rounds = std::max(5, static_cast<int>(seconds / 0.00002));
  const Clock::time_point deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<Clock::time_point> start(static_cast<size_t>(threads) * max_rounds), end(start.size());
  std::vector<float> sums(threads, 0.0f);
  std::atomic<int> arrived{0};
  // Thread 0 ends the measurement at the first round past the deadline; it sets `stop` before it arrives at that
  // round's barrier, so every thread sees it there and all stop at the same round.
  std::atomic<bool> stop{false};
  int rounds = max_rounds;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int r = 0; r < max_rounds; ++r) {
        if (t == 0 && r >= 5 && Clock::now() > deadline) stop.store(true);
        arrived.fetch_add(1);
        while (arrived.load() < threads * (r + 1)) {
        }
        if (stop.load()) {
          if (t == 0) rounds = r;
          break;
        }
        const size_t slot = static_cast<size_t>(r) * threads + t;
        start[slot] = Clock::now();
        sums[t] += fma_loop(kernels, kIters);
        end[slot] = Clock::now();
      }
    });
  }
  for (std::thread& w : workers) w.join();
  volatile float sink = 0.0f;  // keeps the loops' results, and so the loops, alive
  for (float v : sums) sink = sink + v;
  const double flops = 2.0 * (kernels == CpuKernels::kAvx512 ? 16 : 8) * kAccumulators * kIters * threads;
  double best = 0.0;
  for (int r = 0; r < rounds; ++r) {
    const auto first = std::min_element(start.begin() + r * threads, start.begin() + (r + 1) * threads);
    const auto last = std::max_element(end.begin() + r * threads, end.begin() + (r + 1) * threads);
    best = std::max(best, flops / std::chrono::duration<double>(*last - *first).count());
  }
  return best;
}

}  // namespace dnft::cpu
