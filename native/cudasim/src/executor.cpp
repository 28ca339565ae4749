// The simulated GPU's execution of one kernel (docs/gpu.md, "The simulated GPU"): the blocks one after another on
// the stream's OS thread, each CUDA thread of a block a fiber (the switch of fiber_switch.h, announced to
// AddressSanitizer). A thread runs until it reaches a barrier or a warp collective or ends; then it checks its turn
// and switches straight to the next runnable thread in the schedule's order (or, when that one has not started and
// this one ended, runs it on its own stack: a block without barriers is one loop over its threads). The block's shared
// memory is an arena with redzones around each array, checked when a barrier opens and when the block ends, and (with
// the race check on) the bytes each thread changed since the last barrier, compared after every turn (two threads
// changing one byte is a race).
#include "executor.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <numeric>
#include <random>
#include <vector>

#include "fiber_switch.h"
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define CUDASIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUDASIM_ASAN 1
#endif
#endif
#if defined(CUDASIM_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace cudasim {

namespace {
thread_local BuiltinIndices t_indices{};
}  // namespace

BuiltinIndices& builtin_indices() { return t_indices; }

namespace {

constexpr size_t kStackBytes = size_t{256} << 10;  // room for ASan's redzones around every frame
constexpr size_t kGuardBytes = 4096;
constexpr size_t kSharedLimit = 48 * 1024;
constexpr size_t kRedzone = 64;
constexpr size_t kMaxSlots = 32;
constexpr size_t kArenaBytes = kSharedLimit + kMaxSlots * (2 * kRedzone + 64);
constexpr int16_t kNoOwner = -1;
constexpr unsigned char kFill = 0xFF;  // NaN in every float and double
// Redzone bytes: FA FF FF FF repeated, a NaN as float and as double too, unlike anything a kernel writes by chance.
constexpr unsigned char redzone_byte(size_t offset) { return offset % 4 == 0 ? 0xFA : 0xFF; }

void start_switch(void** fake_stack, const void* bottom, size_t size) {
#if defined(CUDASIM_ASAN)
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack, (void)bottom, (void)size;
#endif
}

void finish_switch(void* fake_stack, const void** bottom, size_t* size) {
#if defined(CUDASIM_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack, (void)bottom, (void)size;
#endif
}

// Clears ASan's shadow of a fiber stack's usable bytes. ASan leaves shadow as it is when memory is unmapped, so a
// stack mapped where an earlier one (or an OS thread's stack) was would inherit the frames left there as redzones, and
// frames stay poisoned on a stack abandoned in a faulted block and under every fiber_main, which never returns.
void unpoison_stack(char* stack) {
#if defined(CUDASIM_ASAN)
  __asan_unpoison_memory_region(stack, kStackBytes);
#else
  (void)stack;
#endif
}

enum class State : uint8_t { kReady, kBarrier, kWarp, kExited, kFaulted };

// Thrown by Executor::fail: unwinds the faulting CUDA thread's stack to fiber_main, so that nothing on it leaks.
struct ThreadAbort {};

struct Fiber {
  char* stack = nullptr;  // lowest usable byte (a guard page lies below)
  FiberContext context = nullptr;
  bool needs_start = true;  // a fresh stack, or one abandoned inside a kernel after a fault
  bool abandoned = false;
  void* fake_stack = nullptr;
};

struct CudaThread {
  uint3 index{};
  const char* file = nullptr;  // where it waits
  int line = 0;
  Fiber* fiber = nullptr;
};

struct Slot {
  const SharedTag* tag;
  size_t offset, bytes;
  const char* name;
  const char* file;
  int line;
};

uint3 unflatten(uint64_t i, dim3 d) {
  return {static_cast<unsigned>(i % d.x), static_cast<unsigned>(i / d.x % d.y),
          static_cast<unsigned>(i / (static_cast<uint64_t>(d.x) * d.y))};
}

std::string triple(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

const char* state_name(State s) {
  switch (s) {
    case State::kReady:
      return "runnable";
    case State::kBarrier:
      return "waiting at __syncthreads";
    case State::kWarp:
      return "waiting at a warp collective";
    case State::kExited:
      return "exited";
    case State::kFaulted:
      return "faulted";
  }
  return "?";
}

}  // namespace

std::string site(const char* file, int line) {
  const char* slash = std::strrchr(file, '/');
  return std::string(slash != nullptr ? slash + 1 : file) + ":" + std::to_string(line);
}

// One per OS thread that runs kernels: its fibers, stacks and shared-memory arena are reused from kernel to kernel.
class Executor {
 public:
  Executor()
      : mem_(new (std::align_val_t{64}) unsigned char[kArenaBytes]),
        snapshot_(kArenaBytes),
        redzone_(kArenaBytes),
        owner_(kArenaBytes) {
    for (size_t b = 0; b < kArenaBytes; ++b) redzone_[b] = redzone_byte(b);
  }
  ~Executor() {
    for (Fiber* f : fibers_) {
      unpoison_stack(f->stack);
      munmap(f->stack - kGuardBytes, kStackBytes + kGuardBytes);
      delete f;
    }
    operator delete[](mem_, std::align_val_t{64});
  }
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  static Executor& of_this_thread() {
    thread_local Executor executor;
    return executor;
  }
  // The executor running a kernel on this OS thread, or null (host code).
  static Executor* running() { return running_; }

  Fault run(const KernelLaunch& k, Schedule schedule, uint64_t seed);

  // Called by the CUDA thread now running (inside its fiber).
  void barrier(const char* file, int line);
  [[noreturn]] void fail(cudaError_t code, const std::string& message);
  void* shared_array(SharedTag* tag, size_t bytes, size_t align, const char* name, const char* file, int line);
  void warp_collective(const WarpCall& call);

 private:
  static void fiber_main(FiberTransfer from);
  void switch_to(Fiber& fiber);
  void switch_from_fiber(Fiber* target);
  void resumed(FiberTransfer from);
  void end_turn();
  int next_ready() const;
  Fiber* acquire_fiber();
  void release_fiber(Fiber* f) { free_.push_back(f); }
  void run_block();
  void resume(int i);
  void after_turn(int i);
  void check_redzones(const char* when);
  void quiescent();
  std::vector<int> thread_order();
  std::string thread_states() const;
  void block_fault(cudaError_t code, const std::string& message);
  void thread_fault(int i, cudaError_t code, const std::string& message);
  void check_warp_pointer(const WarpCall& call, int rows, int cols);
  void perform(int lane0);
  int slot_of(const void* p) const;

  // The kernel.
  const KernelLaunch* launch_ = nullptr;
  BuiltinIndices* indices_ = &builtin_indices();  // this OS thread's: set on every turn, without a TLS lookup
  Schedule schedule_ = Schedule::kRoundRobin;
  std::mt19937_64 rng_;
  std::vector<CudaThread> threads_;
  // Each thread's state, apart from the rest of its entry: the scans for the next runnable thread and over the block
  // at every barrier read a byte per thread. And each thread's warp collective while it waits at one.
  std::vector<State> states_;
  std::vector<WarpCall> calls_;
  // The first thread to wait at a barrier since the last one opened, and whether a later one waits at another.
  const CudaThread* first_waiting_ = nullptr;
  bool barriers_differ_ = false;
  int current_ = -1;
  Fault fault_;
  // Fibers.
  std::vector<Fiber*> fibers_, free_;
  Fiber* current_fiber_ = nullptr;
  FiberContext scheduler_ = nullptr;
  const void* scheduler_bottom_ = nullptr;
  size_t scheduler_size_ = 0;
  // Shared memory: the arena, its state at the last turn's end, and which thread changed each byte since the last
  // barrier (-1: none).
  unsigned char* mem_;
  std::vector<unsigned char> snapshot_, redzone_;  // redzone_: the redzone pattern at every offset
  std::vector<int16_t> owner_;                     // a thread index (at most 1,024 threads a block) or kNoOwner
  bool racecheck_ = true;
  std::vector<Slot> slots_;
  size_t end_ = 0, declared_ = 0;
  std::vector<int> order_;
  size_t pos_ = 0;     // the turn's place in order_
  bool woke_ = false;  // a warp collective made threads runnable again during this pass over order_

  static thread_local Executor* running_;
};

thread_local Executor* Executor::running_ = nullptr;

Fault Executor::run(const KernelLaunch& k, Schedule schedule, uint64_t seed) {
  launch_ = &k;
  schedule_ = schedule;
  racecheck_ = config().racecheck;
  rng_.seed(seed);
  fault_ = Fault{};
  gridDim = {k.grid.x, k.grid.y, k.grid.z};
  blockDim = {k.block.x, k.block.y, k.block.z};
  const uint64_t n = static_cast<uint64_t>(k.block.x) * k.block.y * k.block.z;
  threads_.assign(n, CudaThread{});
  states_.assign(n, State::kReady);
  calls_.assign(n, WarpCall{});
  for (uint64_t i = 0; i < n; ++i) threads_[i].index = unflatten(i, k.block);
  slots_.clear();
  end_ = declared_ = 0;
  const uint64_t blocks = static_cast<uint64_t>(k.grid.x) * k.grid.y * k.grid.z;
  std::vector<uint64_t> order;
  if (schedule_ == Schedule::kRandom) {
    order.resize(blocks);
    std::iota(order.begin(), order.end(), uint64_t{0});
    std::shuffle(order.begin(), order.end(), rng_);
  }
  running_ = this;
  for (uint64_t b = 0; b < blocks && fault_.code == cudaSuccess; ++b) {
    const uint64_t block = schedule_ == Schedule::kRandom    ? order[b]
                           : schedule_ == Schedule::kReverse ? blocks - 1 - b
                                                             : b;
    blockIdx = unflatten(block, k.grid);
    run_block();
  }
  running_ = nullptr;
  // Threads of a faulted block never resume: their fibers go back to the pool, to be restarted from scratch.
  for (CudaThread& t : threads_) {
    if (t.fiber != nullptr) {
      t.fiber->abandoned = true;
      release_fiber(t.fiber);
      t.fiber = nullptr;
    }
  }
  launch_ = nullptr;
  return fault_;
}

std::vector<int> Executor::thread_order() {
  std::vector<int> order(threads_.size());
  std::iota(order.begin(), order.end(), 0);
  if (schedule_ == Schedule::kReverse) std::reverse(order.begin(), order.end());
  if (schedule_ == Schedule::kRandom) std::shuffle(order.begin(), order.end(), rng_);
  return order;
}

void Executor::run_block() {
  // A fresh arena: the slots known from earlier blocks of this kernel NaN-filled, redzones around them.
  for (size_t i = 0; i < end_; ++i) mem_[i] = redzone_byte(i);
  for (const Slot& s : slots_) std::memset(mem_ + s.offset, kFill, s.bytes);
  if (racecheck_) {
    std::memcpy(snapshot_.data(), mem_, end_);
    std::fill(owner_.begin(), owner_.begin() + static_cast<std::ptrdiff_t>(end_), kNoOwner);
  }
  std::fill(states_.begin(), states_.end(), State::kReady);
  for (CudaThread& t : threads_) t.fiber = nullptr;
  first_waiting_ = nullptr;
  barriers_differ_ = false;
  order_ = thread_order();
  for (;;) {
    // One pass over order_ runs each runnable thread once; the threads hand the turn on among themselves
    // (end_turn) and the last returns here. Another pass only when a warp collective woke threads.
    do {
      woke_ = false;
      pos_ = 0;
      while (pos_ < order_.size() && states_[order_[pos_]] != State::kReady) ++pos_;
      if (pos_ < order_.size()) resume(order_[pos_]);
      if (fault_.code != cudaSuccess) return;
    } while (woke_);
    const bool done = std::all_of(states_.begin(), states_.end(), [](State s) { return s == State::kExited; });
    if (done) {
      check_redzones("by the block's end");
      return;
    }
    quiescent();
    if (fault_.code != cudaSuccess) return;
  }
}

// No thread can run: every live thread waits at a barrier or a warp collective. One barrier that every thread
// reached opens; anything else is a fault that names each thread's state.
void Executor::quiescent() {
  bool exited = false, warp = false;
  for (State s : states_) {
    exited |= s == State::kExited;
    warp |= s == State::kWarp;
  }
  check_redzones("before a __syncthreads");
  if (fault_.code != cudaSuccess) return;
  if (warp) {
    block_fault(cudaErrorIllegalInstruction,
                "deadlock: a warp collective that part of its warp never reaches (every lane of a warp must call it)");
  } else if (barriers_differ_) {
    block_fault(cudaErrorIllegalInstruction, "divergent __syncthreads: the threads wait at different barriers");
  } else if (exited) {
    block_fault(cudaErrorIllegalInstruction, "threads exited while others wait at __syncthreads");
  } else {
    std::fill(states_.begin(), states_.end(), State::kReady);
    first_waiting_ = nullptr;
    if (racecheck_) std::fill(owner_.begin(), owner_.begin() + static_cast<std::ptrdiff_t>(end_), kNoOwner);
    if (schedule_ == Schedule::kRandom) order_ = thread_order();  // rr and reverse: the same order again
  }
}

std::string Executor::thread_states() const {
  std::string text;
  size_t i = 0;
  while (i < threads_.size()) {
    size_t j = i + 1;
    auto same = [&](size_t x, size_t y) {
      const CudaThread &a = threads_[x], &b = threads_[y];
      return states_[x] == states_[y] && a.line == b.line &&
             (a.file == b.file || (a.file != nullptr && b.file != nullptr && std::strcmp(a.file, b.file) == 0));
    };
    while (j < threads_.size() && same(j, i)) ++j;
    text += "\n    threads " + std::to_string(i) + "-" + std::to_string(j - 1) + ": " + state_name(states_[i]);
    if (states_[i] == State::kBarrier || states_[i] == State::kWarp) {
      text += " at " + site(threads_[i].file, threads_[i].line);
    }
    i = j;
  }
  return text;
}

void Executor::block_fault(cudaError_t code, const std::string& message) {
  fault_.code = code;
  fault_.message = "kernel '" + launch_->what + "', block " + triple(blockIdx) + ": " + message + thread_states();
}

void Executor::thread_fault(int i, cudaError_t code, const std::string& message) {
  fault_.code = code;
  fault_.message = "kernel '" + launch_->what + "', block " + triple(blockIdx) + ", thread " +
                   triple(threads_[i].index) + ": " + message;
}

Fiber* Executor::acquire_fiber() {
  Fiber* f;
  if (!free_.empty()) {
    f = free_.back();
    free_.pop_back();
  } else {
    void* base = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
      std::fprintf(stderr, "cudasim: cannot map a fiber stack\n");
      std::abort();
    }
    mprotect(base, kGuardBytes, PROT_NONE);
    f = new Fiber;
    f->stack = static_cast<char*>(base) + kGuardBytes;
    unpoison_stack(f->stack);
    fibers_.push_back(f);
  }
  if (f->abandoned) {
    unpoison_stack(f->stack);  // the frames it left behind
    f->abandoned = false;
    f->needs_start = true;
  }
  if (f->needs_start) {
    f->context = make_fiber_context(f->stack + kStackBytes, &Executor::fiber_main);
    f->fake_stack = nullptr;
    f->needs_start = false;
  }
  return f;
}

// A fiber's life: run the CUDA thread current_ names, end its turn, and again (end_turn returns when this fiber has
// a thread to run: the next one, or a later one that some turn handed over after a switch back here).
void Executor::fiber_main(FiberTransfer from) {
  Executor* ex = running_;
  ex->resumed(from);
  for (;;) {
    State& state = ex->states_[ex->current_];
    try {
      ex->launch_->body->run_thread();
      state = State::kExited;
    } catch (const ThreadAbort&) {
      state = State::kFaulted;
    } catch (const std::exception& e) {
      ex->thread_fault(ex->current_, cudaErrorLaunchFailure,
                       std::string("a C++ exception left the kernel: ") + e.what());
      state = State::kFaulted;
    } catch (...) {
      ex->thread_fault(ex->current_, cudaErrorLaunchFailure, "a C++ exception left the kernel");
      state = State::kFaulted;
    }
    ex->end_turn();
  }
}

// Every switch passes the Fiber it leaves (null: the scheduler), so that the one resumed saves where it stopped.
void Executor::switch_to(Fiber& fiber) {
  current_fiber_ = &fiber;
  void* fake = nullptr;
  start_switch(&fake, fiber.stack, kStackBytes);
  const FiberTransfer back = switch_fiber_context(fiber.context, nullptr);
  static_cast<Fiber*>(back.data)->context = back.fctx;
  finish_switch(fake, nullptr, nullptr);
}

// From the running fiber to target's (null: back to the scheduler); returns when this fiber is resumed.
void Executor::switch_from_fiber(Fiber* target) {
  Fiber* self = current_fiber_;
  current_fiber_ = target;
  if (target == nullptr) {
    start_switch(&self->fake_stack, scheduler_bottom_, scheduler_size_);
    resumed(switch_fiber_context(scheduler_, self));
  } else {
    start_switch(&self->fake_stack, target->stack, kStackBytes);
    resumed(switch_fiber_context(target->context, self));
  }
}

// In a fiber just resumed (or started) by `from`: saves where the one that switched here stopped.
void Executor::resumed(FiberTransfer from) {
  const void* bottom = nullptr;
  size_t size = 0;
  finish_switch(current_fiber_->fake_stack, &bottom, &size);
  if (from.data == nullptr) {
    scheduler_ = from.fctx;
    scheduler_bottom_ = bottom;
    scheduler_size_ = size;
  } else {
    static_cast<Fiber*>(from.data)->context = from.fctx;
  }
}

// Runs the first thread of a pass; the pass's other turns follow from end_turn, and the last returns here.
void Executor::resume(int i) {
  if (threads_[i].fiber == nullptr) threads_[i].fiber = acquire_fiber();
  current_ = i;
  threadIdx = threads_[i].index;
  switch_to(*threads_[i].fiber);
  current_ = -1;
}

// The next runnable thread after this turn's in order_, or -1.
int Executor::next_ready() const {
  for (size_t p = pos_ + 1; p < order_.size(); ++p) {
    if (states_[order_[p]] == State::kReady) return static_cast<int>(p);
  }
  return -1;
}

// In the fiber whose thread current_ just waited, ended or faulted: checks the turn, then hands the turn to the next
// runnable thread of the pass (on this very stack when that one has not started and this one ended), or back to the
// scheduler at the pass's end or on a fault. Returns when this fiber has a thread to run.
void Executor::end_turn() {
  CudaThread& t = threads_[current_];
  if (fault_.code == cudaSuccess && racecheck_ && end_ != 0) after_turn(current_);
  const int next = fault_.code == cudaSuccess ? next_ready() : -1;
  Fiber* self = current_fiber_;
  if (states_[current_] == State::kExited) {
    release_fiber(self);
    t.fiber = nullptr;
  }
  if (next < 0) {
    switch_from_fiber(nullptr);
    return;
  }
  pos_ = static_cast<size_t>(next);
  current_ = order_[pos_];
  CudaThread& n = threads_[current_];
  indices_->thread_idx = n.index;
  if (n.fiber == nullptr) n.fiber = acquire_fiber();
  if (n.fiber != self) switch_from_fiber(n.fiber);
}

// The first of n bytes at a and b that differ, or n; word by word, and outside the sanitizers (the arena
// is one plain allocation): it runs after every thread's turn.
static __attribute__((no_sanitize("address", "undefined"))) size_t first_difference(const unsigned char* a,
                                                                                    const unsigned char* b, size_t n) {
  using Word = uint64_t __attribute__((may_alias, aligned(1)));
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {  // 64 bytes a step, branch-free inside, which the compiler vectorises
    const auto* x = reinterpret_cast<const Word*>(a + i);
    const auto* y = reinterpret_cast<const Word*>(b + i);
    uint64_t d = 0;
    for (int w = 0; w < 8; ++w) d |= x[w] ^ y[w];
    if (d != 0) break;
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// The redzones around every shared array must be intact when a barrier opens or the block ends (`when`). Checked
// there rather than after every turn, which cost a sixth of a release build's time: the report names the array and
// the interval between barriers, not the thread (a thread's own view: CUDASIM_RACECHECK, which compares every turn,
// or compute-sanitizer on a GPU).
void Executor::check_redzones(const char* when) {
  for (const Slot& s : slots_) {
    const size_t before = s.offset - kRedzone, after = s.offset + s.bytes;
    if (first_difference(mem_ + before, redzone_.data() + before, kRedzone) == kRedzone &&
        first_difference(mem_ + after, redzone_.data() + after, kRedzone) == kRedzone) {
      continue;
    }
    for (size_t b = s.offset - kRedzone; b < s.offset + s.bytes + kRedzone; ++b) {
      if (b == s.offset) b += s.bytes;
      if (mem_[b] == redzone_byte(b)) continue;
      const bool before = b < s.offset;
      const size_t distance = before ? s.offset - b : b - (s.offset + s.bytes) + 1;
      block_fault(cudaErrorIllegalAddress, "shared-memory overrun: a thread wrote " + std::to_string(distance) +
                                               " byte(s) " + (before ? "before the start" : "past the end") + " of '" +
                                               s.name + "' (" + std::to_string(s.bytes) + " bytes, declared at " +
                                               site(s.file, s.line) + ") " + when);
      return;
    }
  }
}

// After thread i's turn: no byte it changed may have been changed by another thread since the last barrier.
void Executor::after_turn(int i) {
  for (size_t b = first_difference(mem_, snapshot_.data(), end_); b < end_;
       b = b + 1 + first_difference(mem_ + b + 1, snapshot_.data() + b + 1, end_ - b - 1)) {
    if (owner_[b] >= 0 && owner_[b] != i) {
      const int s = slot_of(mem_ + b);
      const std::string where = s >= 0 ? "byte " + std::to_string(b - slots_[s].offset) + " of '" + slots_[s].name +
                                             "' (declared at " + site(slots_[s].file, slots_[s].line) + ")"
                                       : "shared byte " + std::to_string(b);
      thread_fault(i, cudaErrorLaunchFailure,
                   "shared-memory race: threads " + triple(threads_[owner_[b]].index) + " and " +
                       triple(threads_[i].index) + " both wrote " + where +
                       " with different values between the same two barriers");
      return;
    }
    owner_[b] = static_cast<int16_t>(i);
    snapshot_[b] = mem_[b];
  }
}

int Executor::slot_of(const void* p) const {
  const auto* c = static_cast<const unsigned char*>(p);
  for (size_t s = 0; s < slots_.size(); ++s) {
    if (c >= mem_ + slots_[s].offset && c < mem_ + slots_[s].offset + slots_[s].bytes) return static_cast<int>(s);
  }
  return -1;
}

void Executor::fail(cudaError_t code, const std::string& message) {
  thread_fault(current_, code, message);
  throw ThreadAbort{};
}

void Executor::barrier(const char* file, int line) {
  CudaThread& t = threads_[current_];
  states_[current_] = State::kBarrier;
  t.file = file;
  t.line = line;
  if (first_waiting_ == nullptr) {
    first_waiting_ = &t;
  } else if (line != first_waiting_->line ||
             (file != first_waiting_->file && std::strcmp(file, first_waiting_->file) != 0)) {
    barriers_differ_ = true;
  }
  end_turn();
}

void* Executor::shared_array(SharedTag* tag, size_t bytes, size_t align, const char* name, const char* file, int line) {
  for (const Slot& s : slots_) {
    if (s.tag == tag) return mem_ + s.offset;
  }
  if (declared_ + bytes > kSharedLimit || slots_.size() == kMaxSlots) {
    fail(cudaErrorLaunchOutOfResources, "shared memory: '" + std::string(name) + "' (" + std::to_string(bytes) +
                                            " bytes, " + site(file, line) +
                                            ") takes the block's static shared memory to " +
                                            std::to_string(declared_ + bytes) + " bytes, over the 48 KiB limit");
  }
  const size_t a = std::max<size_t>(align, 32);
  const size_t offset = (end_ + kRedzone + a - 1) / a * a;
  for (size_t b = end_; b < offset + bytes + kRedzone; ++b) mem_[b] = redzone_byte(b);
  std::memset(mem_ + offset, kFill, bytes);
  if (racecheck_) {
    std::memcpy(snapshot_.data() + end_, mem_ + end_, offset + bytes + kRedzone - end_);
    std::fill(owner_.begin() + static_cast<std::ptrdiff_t>(end_),
              owner_.begin() + static_cast<std::ptrdiff_t>(offset + bytes + kRedzone), kNoOwner);
  }
  slots_.push_back({tag, offset, bytes, name, file, line});
  end_ = offset + bytes + kRedzone;
  declared_ += bytes;
  return mem_ + offset;
}

// WMMA's TF32 m16n16k8 element maps of sm_80: lane L's element e of each fragment.
namespace {
struct RowCol {
  int row, col;
};
RowCol map_a(int lane, int e) { return {lane / 4 + 8 * (e & 1), lane % 4 + 4 * ((e >> 1) & 1)}; }
RowCol map_b(int lane, int e) { return {lane % 4 + 4 * (e & 1), lane / 4 + 8 * ((e >> 1) & 1)}; }
RowCol map_c(int lane, int e) { return {lane / 4 + 8 * ((e >> 1) & 1), 2 * (lane % 4) + (e & 1) + 8 * ((e >> 2) & 1)}; }
float tf32_truncate(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits &= ~uint32_t{0x1FFF};
  std::memcpy(&v, &bits, 4);
  return v;
}
const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::kLoadA:
      return "wmma::load_matrix_sync (matrix_a)";
    case WarpOp::kLoadB:
      return "wmma::load_matrix_sync (matrix_b)";
    case WarpOp::kStore:
      return "wmma::store_matrix_sync";
    case WarpOp::kMma:
      return "wmma::mma_sync";
  }
  return "?";
}
}  // namespace

// The rows × cols tile at call.ptr must lie inside one shared array or one device allocation.
void Executor::check_warp_pointer(const WarpCall& call, int rows, int cols) {
  auto what = [&call] { return std::string(op_name(call.op)) + " at " + site(call.file, call.line); };
  if (reinterpret_cast<uintptr_t>(call.ptr) % 32 != 0)
    fail(cudaErrorIllegalAddress, what() + ": pointer not 32-byte aligned");
  if (call.ldm % 4 != 0 || call.ldm < static_cast<unsigned>(cols)) {
    fail(cudaErrorIllegalInstruction, what() + ": ldm " + std::to_string(call.ldm) +
                                          " is not a multiple of 4 floats of at least " + std::to_string(cols));
  }
  const size_t bytes = (static_cast<size_t>(rows - 1) * call.ldm + cols) * sizeof(float);
  const int s = slot_of(call.ptr);
  if (s >= 0) {
    const auto* p = static_cast<const unsigned char*>(call.ptr);
    if (p + bytes > mem_ + slots_[s].offset + slots_[s].bytes) {
      fail(cudaErrorIllegalAddress, what() + ": the tile reaches past the end of '" + slots_[s].name + "'");
    }
  } else if (!is_device_memory(call.ptr, bytes)) {
    fail(cudaErrorIllegalAddress, what() + ": the tile is neither inside a shared array nor inside device memory");
  }
}

void Executor::warp_collective(const WarpCall& call) {
  // No string lives across the switch below: a thread of a faulted block is never resumed, and its stack not unwound.
  auto what = [&call] { return std::string(op_name(call.op)) + " at " + site(call.file, call.line); };
  if (launch_->cc_major < 8) {
    fail(cudaErrorIllegalInstruction, what() + ": TF32 WMMA needs compute capability 8.0; the simulated device has " +
                                          std::to_string(launch_->cc_major) + "." + std::to_string(launch_->cc_minor));
  }
  const int n = static_cast<int>(threads_.size()), lane0 = current_ / 32 * 32, lanes = std::min(32, n - lane0);
  if (lanes < 32) {
    fail(cudaErrorIllegalInstruction, what() + ": a warp collective needs a full warp; warp " +
                                          std::to_string(current_ / 32) + " of this " + std::to_string(n) +
                                          "-thread block has " + std::to_string(lanes) + " threads");
  }
  CudaThread& self = threads_[current_];
  states_[current_] = State::kWarp;
  calls_[current_] = call;
  self.file = call.file;
  self.line = call.line;
  for (int l = 0; l < 32; ++l) {
    if (states_[lane0 + l] != State::kWarp) {
      end_turn();  // the warp's last lane performs the collective and wakes this one
      return;
    }
  }
  for (int l = 0; l < 32; ++l) {
    const WarpCall& c = calls_[lane0 + l];
    if (c.op != call.op || c.line != call.line || std::strcmp(c.file, call.file) != 0) {
      fail(cudaErrorIllegalInstruction, what() + ": lane " + std::to_string(l) + " of the warp is at " + op_name(c.op) +
                                            " at " + site(c.file, c.line) + " instead");
    }
    if (c.ptr != call.ptr || c.ldm != call.ldm || c.layout != call.layout) {
      fail(cudaErrorIllegalInstruction, what() + ": the lanes pass different pointers, ldm or layouts");
    }
  }
  // The operand once for the warp (its lanes agree on it): the device-memory lookup takes the runtime's lock.
  if (call.op == WarpOp::kLoadA) check_warp_pointer(call, 16, 8);
  if (call.op == WarpOp::kLoadB) check_warp_pointer(call, 8, 16);
  if (call.op == WarpOp::kStore) check_warp_pointer(call, 16, 16);
  perform(lane0);
  for (int l = 0; l < 32; ++l) states_[lane0 + l] = State::kReady;
  woke_ = true;
}

void Executor::perform(int lane0) {
  const WarpCall& call = calls_[lane0];
  auto lane = [&](int l) -> const WarpCall& { return calls_[lane0 + l]; };
  const auto* src = static_cast<const float*>(call.ptr);
  switch (call.op) {
    case WarpOp::kLoadA:
      for (int l = 0; l < 32; ++l) {
        for (int e = 0; e < 4; ++e) {
          const RowCol rc = map_a(l, e);
          lane(l).out[e] = src[rc.row * call.ldm + rc.col];
        }
      }
      break;
    case WarpOp::kLoadB:
      for (int l = 0; l < 32; ++l) {
        for (int e = 0; e < 4; ++e) {
          const RowCol rc = map_b(l, e);
          lane(l).out[e] = src[rc.row * call.ldm + rc.col];
        }
      }
      break;
    case WarpOp::kStore: {
      auto* dst = const_cast<float*>(src);
      for (int l = 0; l < 32; ++l) {
        for (int e = 0; e < 8; ++e) {
          const RowCol rc = map_c(l, e);
          const size_t at = call.layout == 0 ? rc.row * call.ldm + rc.col : rc.col * call.ldm + rc.row;
          dst[at] = lane(l).c[e];
        }
      }
      break;
    }
    case WarpOp::kMma: {
      float A[16][8], B[8][16], C[16][16];
      for (int l = 0; l < 32; ++l) {
        for (int e = 0; e < 4; ++e) {
          const RowCol ra = map_a(l, e), rb = map_b(l, e);
          A[ra.row][ra.col] = tf32_truncate(lane(l).a[e]);
          B[rb.row][rb.col] = tf32_truncate(lane(l).b[e]);
        }
        for (int e = 0; e < 8; ++e) {
          const RowCol rc = map_c(l, e);
          C[rc.row][rc.col] = lane(l).c[e];
        }
      }
      // Products of TF32 values are exact in FP32 (11-bit significands); the sum is FP32, in k order.
      for (int i = 0; i < 16; ++i) {
        for (int j = 0; j < 16; ++j) {
          float acc = C[i][j];
          for (int k = 0; k < 8; ++k) acc += A[i][k] * B[k][j];
          C[i][j] = acc;
        }
      }
      for (int l = 0; l < 32; ++l) {
        for (int e = 0; e < 8; ++e) {
          const RowCol rc = map_c(l, e);
          lane(l).out[e] = C[rc.row][rc.col];
        }
      }
      break;
    }
  }
}

Fault run_kernel(const KernelLaunch& launch, Schedule schedule, uint64_t seed) {
  return Executor::of_this_thread().run(launch, schedule, seed);
}

namespace {
Executor& in_kernel(const char* what) {
  Executor* ex = Executor::running();
  if (ex == nullptr) {
    std::fprintf(stderr, "cudasim: %s called outside a kernel\n", what);
    std::abort();
  }
  return *ex;
}
}  // namespace

void barrier(const char* file, int line) { in_kernel("__syncthreads").barrier(file, line); }

void trap(const char* file, int line) {
  in_kernel("__trap").fail(cudaErrorLaunchFailure, "__trap() at " + site(file, line));
}

void* shared_array(SharedTag* tag, size_t bytes, size_t align, const char* name, const char* file, int line) {
  return in_kernel("a shared-memory declaration").shared_array(tag, bytes, align, name, file, line);
}

void warp_collective(const WarpCall& call) { in_kernel("a warp collective").warp_collective(call); }

}  // namespace cudasim
