// A small fork-join thread pool for the CPU backend.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dnft::cpu {

class ThreadPool {
 public:
  // threads >= 1; the calling thread participates as worker 0, so threads - 1 OS threads are started.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // Runs fn(begin, end, worker) over [0, n) split into at most size() contiguous chunks of at least `grain` items
  // (fewer when n is small), and blocks until all are done. `worker` is the chunk index, in [0, size()): chunk w
  // always covers the same range and no two running chunks share an index, so per-worker scratch and reductions
  // indexed by it are safe and deterministic. Chunks are claimed dynamically: the caller runs any chunk a worker has
  // not picked up yet instead of waiting for it to wake. Nested calls from inside fn run serially as fn(0, n, 0).
  // The first exception thrown by fn is rethrown here once every chunk has finished. Independent callers are
  // serialised.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end, int worker)>& fn,
                    int64_t grain = 1);

 private:
  void worker_loop();
  // Claims and runs chunks of the current job until none are left; `generation` is the job the caller expects.
  void run_chunks(uint32_t generation);

  const int size_;
  const bool spin_;  // false when oversubscribed: spinning would steal the core from the thread being waited for
  std::vector<std::thread> threads_;
  std::mutex call_mutex_;

  // Current job. state_ packs generation (high 32 bits), chunk count (16 bits) and next unclaimed chunk (16 bits), so
  // a worker that wakes late can never claim a chunk of a job other than the one it saw; the fields below are only
  // read after a successful claim and stay fixed until every claimed chunk is done.
  const std::function<void(int64_t, int64_t, int)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<uint64_t> state_{0};
  std::atomic<int> done_{0};
  std::atomic<bool> stop_{false};

  std::mutex mutex_;
  std::condition_variable wake_cv_;  // workers sleeping for a new generation
  std::condition_variable done_cv_;  // caller sleeping for the last chunk
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> caller_sleeping_{false};
  std::exception_ptr error_;
};

// The CPUs this process may run on (its affinity mask on Linux, else std::thread::hardware_concurrency()).
int usable_cpus();

// The process-wide pool: created on first use with DNFT_NUM_THREADS threads when that is set (>= 1), else
// usable_cpus().
ThreadPool& global_pool();

// Runs fn(begin, end) over [0, n) on the global pool in chunks large enough that an elementwise loop outweighs
// the fork-join.
template <typename Fn>
void parallel_elements(size_t n, Fn&& fn) {
  constexpr int64_t kElementGrain = 16384;
  global_pool().parallel_for(
      static_cast<int64_t>(n), [&](int64_t begin, int64_t end, int) { fn(begin, end); }, kElementGrain);
}
// Held for the whole of a native call that uses the global pool, so that set_num_threads cannot replace the pool
// under it (kernels size per-worker scratch by the pool they see at the start of a call).
// A count under a plain mutex rather than std::shared_mutex: the latter's pthread_rwlock symbols raise the
// prebuilt binaries' glibc floor to 2.34 (docs/install.md).
class PoolUse {
 public:
  PoolUse();
  ~PoolUse();
  PoolUse(const PoolUse&) = delete;
  PoolUse& operator=(const PoolUse&) = delete;
};

// Replaces the global pool (throws std::invalid_argument if threads < 1). Refuses, with dnft::Error (kState), while
// any PoolUse is held: it never waits, so it cannot deadlock against a call in flight.
void set_num_threads(int threads);
int num_threads();

}  // namespace dnft::cpu
