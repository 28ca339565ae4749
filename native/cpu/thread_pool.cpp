#include "cpu/thread_pool.h"

#if defined(__linux__)
#include <sched.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "core/common.h"

namespace dnft::cpu {
namespace {

// True on pool workers and on a caller while it runs its own chunk: parallel_for from there runs serially.
thread_local bool t_in_parallel = false;

// Idle workers (and a caller waiting for them) spin this long before sleeping on a condition variable: a training
// step issues many short parallel calls back to back, and a futex wake-up costs tens of microseconds.
constexpr auto kSpinTime = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() or the spin time has passed; returns done().
template <typename Done>
bool spin_until(bool spin, Done done) {
  if (done() || !spin) return done();
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

struct ParallelScope {
  bool saved = t_in_parallel;
  ParallelScope() { t_in_parallel = true; }
  ~ParallelScope() { t_in_parallel = saved; }
};

inline uint32_t state_generation(uint64_t s) { return static_cast<uint32_t>(s >> 32); }
inline int state_chunks(uint64_t s) { return static_cast<int>((s >> 16) & 0xFFFF); }
inline int state_next(uint64_t s) { return static_cast<int>(s & 0xFFFF); }

}  // namespace

int usable_cpus() {
#if defined(__linux__)
  // The CPUs this process may run on: fewer than the machine's when a launcher binds it (mpirun binds each of two
  // ranks to one core), taskset or a container's cpuset restricts it.
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

ThreadPool::ThreadPool(int threads) : size_(threads), spin_(threads <= usable_cpus()) {
  if (threads < 1 || threads > 0xFFFF) throw std::invalid_argument("ThreadPool: threads must be in [1, 65535]");
  threads_.reserve(static_cast<size_t>(threads - 1));
  for (int w = 1; w < threads; ++w) threads_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  state_.store(static_cast<uint64_t>(state_generation(state_.load()) + 1) << 32);  // a job with no chunks
  { std::lock_guard<std::mutex> lock(mutex_); }
  wake_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::run_chunks(uint32_t generation) {
  for (;;) {
    uint64_t s = state_.load(std::memory_order_acquire);
    do {
      if (state_generation(s) != generation || state_next(s) >= state_chunks(s)) return;
    } while (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire));
    const int chunk = state_next(s), chunks = state_chunks(s);
    const int64_t base = n_ / chunks, extra = n_ % chunks;
    const int64_t begin = base * chunk + std::min<int64_t>(chunk, extra);
    const int64_t end = begin + base + (chunk < extra ? 1 : 0);
    try {
      (*fn_)(begin, end, chunk);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    // seq_cst increment, then the flag: pairs with the caller's flag-then-check before it sleeps.
    if (done_.fetch_add(1) + 1 == chunks && caller_sleeping_.load()) {
      { std::lock_guard<std::mutex> lock(mutex_); }
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::worker_loop() {
  t_in_parallel = true;
  uint32_t seen = 0;
  const auto new_job = [&] { return state_generation(state_.load(std::memory_order_acquire)) != seen; };
  for (;;) {
    if (!spin_until(spin_, new_job)) {
      // seq_cst increment, then the re-check under mutex_: pairs with the caller's publish-then-check.
      sleeping_workers_.fetch_add(1);
      std::unique_lock<std::mutex> lock(mutex_);
      wake_cv_.wait(lock, new_job);
      sleeping_workers_.fetch_sub(1);
    }
    seen = state_generation(state_.load(std::memory_order_acquire));
    if (stop_.load()) return;
    run_chunks(seen);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t wanted = (n + grain - 1) / grain;
  const int chunks = static_cast<int>(std::min<int64_t>(size_, wanted));
  if (t_in_parallel || chunks <= 1) {
    ParallelScope scope;
    fn(0, n, 0);
    return;
  }

  std::lock_guard<std::mutex> call_lock(call_mutex_);
  ParallelScope scope;
  fn_ = &fn;
  n_ = n;
  error_ = nullptr;
  done_.store(0);
  const uint32_t generation = state_generation(state_.load()) + 1;
  state_.store(static_cast<uint64_t>(generation) << 32 | static_cast<uint64_t>(chunks) << 16);  // publishes the job
  if (sleeping_workers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mutex_); }
    wake_cv_.notify_all();
  }

  run_chunks(generation);

  const auto all_done = [&] { return done_.load(std::memory_order_acquire) == chunks; };
  if (!spin_until(spin_, all_done)) {
    caller_sleeping_.store(true);
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, all_done);
    caller_sleeping_.store(false);
  }
  fn_ = nullptr;
  if (error_) {
    std::exception_ptr error = error_;
    error_ = nullptr;
    std::rethrow_exception(error);
  }
}

namespace {

std::mutex g_pool_mutex;
std::mutex g_use_mutex;  // guards g_users, and is held while set_num_threads replaces the pool
int g_users = 0;
std::atomic<ThreadPool*> g_pool{nullptr};  // intentionally leaked at exit: joining threads during teardown is fragile

int default_threads() {
  if (const char* env = std::getenv("DNFT_NUM_THREADS")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 4096) return static_cast<int>(v);
  }
  return usable_cpus();
}

}  // namespace

ThreadPool& global_pool() {
  ThreadPool* pool = g_pool.load(std::memory_order_acquire);
  if (pool != nullptr) return *pool;
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  pool = g_pool.load(std::memory_order_acquire);
  if (pool == nullptr) {
    pool = new ThreadPool(default_threads());
    g_pool.store(pool, std::memory_order_release);
  }
  return *pool;
}

PoolUse::PoolUse() {
  const std::lock_guard<std::mutex> lock(g_use_mutex);
  ++g_users;
}

PoolUse::~PoolUse() {
  const std::lock_guard<std::mutex> lock(g_use_mutex);
  --g_users;
}

void set_num_threads(int threads) {
  if (threads < 1) throw std::invalid_argument("set_num_threads: threads must be >= 1, got " + std::to_string(threads));
  const std::lock_guard<std::mutex> idle(g_use_mutex);
  if (g_users > 0) {
    throw Error(Error::Kind::kState, "setThreads: a native call is in flight; await it before changing the threads");
  }
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  ThreadPool* old = g_pool.load(std::memory_order_acquire);
  if (old != nullptr && old->size() == threads) return;
  g_pool.store(new ThreadPool(threads), std::memory_order_release);
  delete old;
}

int num_threads() { return global_pool().size(); }

}  // namespace dnft::cpu
