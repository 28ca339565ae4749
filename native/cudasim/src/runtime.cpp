// The simulated GPU's CUDA runtime (docs/gpu.md, "The simulated GPU"): devices, the error model (a fault in a
// kernel is sticky, a bad launch configuration or a failed call is not), device memory, streams that each run
// their queue on an OS thread of their own, events, host functions, and the fault injector.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "internal.h"

struct CUevent_st;

namespace cudasim {

namespace {

struct Device {
  cudaError_t sticky = cudaSuccess;
  size_t used = 0;
  CUstream_st* default_stream = nullptr;
};

struct Allocation {
  size_t bytes;
  int device;
};

struct EventState {
  int device = 0;
  uint64_t recorded = 0;   // records queued so far
  uint64_t completed = 0;  // the latest record that has run
  int stream = -1;         // the stream and position of the latest record, for the host's view of completion
  uint64_t stream_seq = 0;
  std::map<int, uint64_t> clock;  // the recording stream's clock at the latest record
};

// The latest task of each stream that used a device allocation.
struct Use {
  uint64_t seq;
  std::string what;
};

// The device memory a queued task may touch: exact for copies, the argument words that point into device memory
// for kernels (conservative), kept until the host has waited for the task.
struct Footprint {
  uint64_t seq;
  std::string what;
  std::vector<uintptr_t> words;
};

struct Task {
  enum class Kind { kKernel, kCopy, kRecord, kWait, kHost };
  explicit Task(Kind k) : kind(k) {}
  Kind kind;
  uint64_t seq = 0;
  std::unique_ptr<KernelLaunch> kernel;
  void* dst = nullptr;
  const void* src = nullptr;
  size_t bytes = 0;
  std::shared_ptr<EventState> event;
  uint64_t generation = 0;
  cudaHostFn_t fn = nullptr;
  void* data = nullptr;
};

}  // namespace

}  // namespace cudasim

struct CUstream_st {
  int id;
  int device;
  std::deque<cudasim::Task> queue;
  uint64_t enqueued = 0, completed = 0;
  uint64_t host_synced = 0;  // every task up to this one is known to the host as complete
  uint64_t kernels = 0;
  // Happens-before: for each stream, the last of its tasks known to come before this stream's next one (through
  // event waits and what the host had waited for when it queued work here).
  std::map<int, uint64_t> clock;
  std::deque<cudasim::Footprint> footprints;
  // Event waits this stream ran: once the host knows this stream reached `seq`, it knows `stream` reached `their`.
  struct Implied {
    uint64_t seq;
    int stream;
    uint64_t their;
  };
  std::vector<Implied> implied;
  bool stop = false;
  std::thread worker;
};

struct CUevent_st {
  std::shared_ptr<cudasim::EventState> state;
};

namespace cudasim {

namespace {

struct Runtime {
  std::mutex mutex;
  std::condition_variable changed;
  Config config;
  std::vector<Device> devices;
  std::map<uintptr_t, Allocation> allocations;
  std::map<uintptr_t, std::map<int, Use>> uses;  // allocation → stream → its latest task using it
  std::map<int, CUstream_st*> streams;
  std::set<CUevent_st*> events;
  int next_stream = 1;
  std::map<std::string, long> calls;    // API name → calls so far
  std::map<std::string, long> fail_at;  // API name → the call that fails
  std::string last_fault;
};

thread_local int t_device = 0;
thread_local cudaError_t t_last = cudaSuccess;

size_t parse_size(const char* text) {
  char* end = nullptr;
  double value = std::strtod(text, &end);
  switch (end != nullptr ? *end : '\0') {
    case 'K':
    case 'k':
      value *= 1024.0;
      break;
    case 'M':
    case 'm':
      value *= 1024.0 * 1024;
      break;
    case 'G':
    case 'g':
      value *= 1024.0 * 1024 * 1024;
      break;
    case 'T':
    case 't':
      value *= 1024.0 * 1024 * 1024 * 1024;
      break;
    default:
      break;
  }
  return static_cast<size_t>(value);
}

[[noreturn]] void bad_setting(const char* name, const char* value) {
  std::fprintf(stderr, "cudasim: cannot read %s=%s\n", name, value);
  std::exit(2);
}

void parse_schedule(Config& c, const std::string& text) {
  if (text == "rr") {
    c.schedule = Schedule::kRoundRobin;
  } else if (text == "reverse") {
    c.schedule = Schedule::kReverse;
  } else if (text.rfind("random", 0) == 0) {
    c.schedule = Schedule::kRandom;
    if (text.size() > 7 && text[6] == ':') {
      c.seed = std::strtoull(text.c_str() + 7, nullptr, 10);
    } else {
      c.seed = std::random_device{}();
    }
  } else {
    bad_setting("CUDASIM_SCHEDULE", text.c_str());
  }
}

Runtime& runtime() {
  // Never destroyed: stream threads may still run while static destructors do.
  static Runtime* rt = [] {
    auto* r = new Runtime;
    Config& c = r->config;
    if (const char* v = std::getenv("CUDASIM_DEVICES")) {
      c.devices = std::atoi(v);
      if (c.devices < 0 || c.devices > 8) bad_setting("CUDASIM_DEVICES", v);
    }
    if (const char* v = std::getenv("CUDASIM_CC")) {
      if (std::sscanf(v, "%d.%d", &c.cc_major, &c.cc_minor) != 2) bad_setting("CUDASIM_CC", v);
    }
    if (const char* v = std::getenv("CUDASIM_MEM")) c.memory = parse_size(v);
    if (const char* v = std::getenv("CUDASIM_SCHEDULE")) parse_schedule(c, v);
    if (const char* v = std::getenv("CUDASIM_STRICT_FREE")) c.strict_free = std::atoi(v) != 0;
    if (const char* v = std::getenv("CUDASIM_RACECHECK")) c.racecheck = std::atoi(v) != 0;
    if (const char* v = std::getenv("CUDASIM_ABORT")) c.abort_on_fault = std::atoi(v) != 0;
    if (const char* v = std::getenv("CUDASIM_FAIL")) {
      std::string spec = v;
      size_t at = 0;
      while (at < spec.size()) {
        const size_t comma = std::min(spec.find(',', at), spec.size());
        const std::string item = spec.substr(at, comma - at);
        const size_t colon = item.find(':');
        if (colon == std::string::npos || std::atol(item.c_str() + colon + 1) < 1) bad_setting("CUDASIM_FAIL", v);
        r->fail_at[item.substr(0, colon)] = std::atol(item.c_str() + colon + 1);
        at = comma + 1;
      }
    }
    r->devices.resize(static_cast<size_t>(c.devices));
    std::string schedule = c.schedule == Schedule::kRoundRobin ? "rr"
                           : c.schedule == Schedule::kReverse  ? "reverse"
                                                               : "random:" + std::to_string(c.seed);
    std::fprintf(stderr, "cudasim: %d device(s) of compute capability %d.%d, %.3g GiB; schedule %s%s%s\n", c.devices,
                 c.cc_major, c.cc_minor, static_cast<double>(c.memory) / (1 << 30), schedule.c_str(),
                 c.strict_free ? ", strict free" : "", c.racecheck ? ", race check" : "");
    return r;
  }();
  return *rt;
}

// Counts a call of `api`; true when the fault injector makes this one fail.
bool injected(Runtime& rt, const std::string& api) {
  const long n = ++rt.calls[api];
  auto it = rt.fail_at.find(api);
  if (it == rt.fail_at.end() || it->second != n) return false;
  std::fprintf(stderr, "cudasim: injected failure of %s call %ld\n", api.c_str(), n);
  return true;
}

cudaError_t fail(cudaError_t error) {
  t_last = error;
  return error;
}

const Allocation* find_allocation(Runtime& rt, const void* p, size_t bytes, uintptr_t* base = nullptr) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = rt.allocations.upper_bound(a);
  if (it == rt.allocations.begin()) return nullptr;
  --it;
  if (a + bytes > it->first + std::max<size_t>(it->second.bytes, 1) || a < it->first) return nullptr;
  if (base != nullptr) *base = it->first;
  return &it->second;
}

// The device calls run on: the current one, which must exist.
cudaError_t current_device(Runtime& rt, Device** device) {
  if (rt.devices.empty()) return cudaErrorNoDevice;
  *device = &rt.devices[static_cast<size_t>(t_device)];
  return (*device)->sticky;
}

void mark_host_synced(Runtime& rt, CUstream_st* s, uint64_t seq) {
  if (seq <= s->host_synced) return;
  s->host_synced = seq;
  while (!s->footprints.empty() && s->footprints.front().seq <= seq) s->footprints.pop_front();
  std::vector<CUstream_st::Implied> later;
  for (const CUstream_st::Implied& i : s->implied) {
    if (i.seq > seq) {
      later.push_back(i);
      continue;
    }
    auto other = rt.streams.find(i.stream);
    if (other != rt.streams.end()) mark_host_synced(rt, other->second, i.their);
  }
  s->implied = std::move(later);
}

void report_fault(Runtime& rt, int device, const Fault& fault) {
  std::fprintf(stderr, "cudasim: FAULT (%s) %s\n", cudaGetErrorName(fault.code), fault.message.c_str());
  rt.last_fault = fault.message;
  if (rt.devices[static_cast<size_t>(device)].sticky == cudaSuccess) {
    rt.devices[static_cast<size_t>(device)].sticky = fault.code;
  }
  if (rt.config.abort_on_fault) std::abort();
}

uint64_t kernel_seed(const Config& c, const CUstream_st* s) {
  return c.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(s->id) * 0xBF58476D1CE4E5B9ull + s->kernels;
}

void worker(CUstream_st* s) {
  Runtime& rt = runtime();
  std::unique_lock<std::mutex> lock(rt.mutex);
  for (;;) {
    rt.changed.wait(lock, [&] { return s->stop || !s->queue.empty(); });
    if (s->queue.empty()) return;
    Task task = std::move(s->queue.front());
    s->queue.pop_front();
    if (task.kind == Task::Kind::kWait) {
      rt.changed.wait(lock, [&] { return task.event->completed >= task.generation; });
    }
    const bool faulted = rt.devices[static_cast<size_t>(s->device)].sticky != cudaSuccess;
    const Config config = rt.config;
    Fault fault;
    bool inject_kernel_fault = false;
    if (task.kind == Task::Kind::kKernel) {
      ++s->kernels;
      inject_kernel_fault = !faulted && injected(rt, "kernel");
    }
    const uint64_t seed = kernel_seed(config, s);
    lock.unlock();
    switch (task.kind) {
      case Task::Kind::kKernel:
        if (inject_kernel_fault) {
          fault = {cudaErrorLaunchFailure,
                   "kernel '" + task.kernel->what + "': injected fault (CUDASIM_FAIL or cudasim::fail_call)"};
        } else if (!faulted) {
          fault = run_kernel(*task.kernel, config.schedule, seed);
        }
        break;
      case Task::Kind::kCopy:
        if (!faulted) std::memcpy(task.dst, task.src, task.bytes);
        break;
      case Task::Kind::kHost:
        task.fn(task.data);
        break;
      case Task::Kind::kRecord:
      case Task::Kind::kWait:
        break;
    }
    task.kernel.reset();  // the arguments' destructors run here, not under the lock
    lock.lock();
    if (fault.code != cudaSuccess) report_fault(rt, s->device, fault);
    if (task.kind == Task::Kind::kRecord) task.event->completed = std::max(task.event->completed, task.generation);
    if (task.kind == Task::Kind::kWait && task.event->stream >= 0) {
      s->implied.push_back({task.seq, task.event->stream, task.event->stream_seq});
    }
    s->completed = task.seq;
    rt.changed.notify_all();
  }
}

CUstream_st* new_stream(Runtime& rt, int device) {
  auto* s = new CUstream_st;
  s->id = rt.next_stream++;
  s->device = device;
  rt.streams[s->id] = s;
  s->worker = std::thread(worker, s);
  return s;
}

// The stream a call names: null is the current device's default stream.
cudaError_t resolve(Runtime& rt, cudaStream_t stream, CUstream_st** out) {
  if (stream == nullptr) {
    Device& d = rt.devices[static_cast<size_t>(t_device)];
    if (d.default_stream == nullptr) d.default_stream = new_stream(rt, t_device);
    *out = d.default_stream;
    return cudaSuccess;
  }
  auto it = rt.streams.find(stream->id);
  if (it == rt.streams.end() || it->second != stream) return cudaErrorInvalidResourceHandle;
  // Work goes to a stream of the current device only (the check that activate() was called).
  if (stream->device != t_device) return cudaErrorInvalidResourceHandle;
  *out = stream;
  return cudaSuccess;
}

// A task on stream s that uses an allocation which another stream's task also uses, with neither an event nor a
// host wait ordering the two, is a fault: the stream order check (conservative for kernels, whose reads and writes
// are not told apart).
void check_order(Runtime& rt, CUstream_st* s, uint64_t seq, const std::string& what,
                 const std::vector<uintptr_t>& footprint) {
  for (uintptr_t w : footprint) {
    uintptr_t base = 0;
    if (find_allocation(rt, reinterpret_cast<const void*>(w), 1, &base) == nullptr) continue;
    std::map<int, Use>& uses = rt.uses[base];
    for (const auto& [other, use] : uses) {
      if (other == s->id || s->clock[other] >= use.seq) continue;
      report_fault(
          rt, s->device,
          {cudaErrorIllegalAddress, what + " on stream " + std::to_string(s->id) + " uses device memory that " +
                                        use.what + " on stream " + std::to_string(other) +
                                        " also uses, and no event or host wait orders the two"});
    }
    uses[s->id] = {seq, what};
  }
}

void enqueue(Runtime& rt, CUstream_st* s, Task task, std::string what, std::vector<uintptr_t> footprint) {
  task.seq = ++s->enqueued;
  for (const auto& [id, other] : rt.streams) {
    if (other->host_synced > 0) s->clock[id] = std::max(s->clock[id], other->host_synced);
  }
  s->clock[s->id] = task.seq;
  if (task.kind == Task::Kind::kRecord) task.event->clock = s->clock;
  if (task.kind == Task::Kind::kWait) {
    for (const auto& [id, seq] : task.event->clock) s->clock[id] = std::max(s->clock[id], seq);
  }
  check_order(rt, s, task.seq, what, footprint);
  if (!footprint.empty()) s->footprints.push_back({task.seq, std::move(what), std::move(footprint)});
  if (s->footprints.size() > 100000) s->footprints.pop_front();  // a stream the host never waits for
  s->queue.push_back(std::move(task));
  rt.changed.notify_all();
}

void wait_idle(Runtime& rt, std::unique_lock<std::mutex>& lock, CUstream_st* s) {
  const uint64_t target = s->enqueued;
  rt.changed.wait(lock, [&] { return s->completed >= target; });
  mark_host_synced(rt, s, target);
}

void wait_device(Runtime& rt, std::unique_lock<std::mutex>& lock, int device) {
  std::vector<CUstream_st*> mine;
  for (auto& [id, s] : rt.streams) {
    if (s->device == device) mine.push_back(s);
  }
  for (CUstream_st* s : mine) wait_idle(rt, lock, s);
}

// The argument words of a kernel that point into device memory.
std::vector<uintptr_t> device_words(Runtime& rt, const KernelBody& body) {
  std::vector<uintptr_t> words;
  const auto* bytes = static_cast<const unsigned char*>(body.arg_bytes());
  for (size_t at = 0; at + sizeof(uintptr_t) <= body.arg_size(); at += alignof(uintptr_t)) {
    uintptr_t w;
    std::memcpy(&w, bytes + at, sizeof w);
    if (find_allocation(rt, reinterpret_cast<const void*>(w), 1) != nullptr) words.push_back(w);
  }
  return words;
}

}  // namespace

Config config() {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  return rt.config;
}

bool is_device_memory(const void* p, size_t bytes) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  return find_allocation(rt, p, bytes) != nullptr;
}

void launch_body(const char* what, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                 std::unique_ptr<KernelBody> body) {
  Runtime& rt = runtime();
  std::unique_lock<std::mutex> lock(rt.mutex);
  Device* device = nullptr;
  if (const cudaError_t e = current_device(rt, &device)) {
    fail(e);
    return;
  }
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 0x7FFFFFFFu || grid.y > 65535 || grid.z > 65535 || shared_bytes > 48 * 1024) {
    std::fprintf(
        stderr,
        "cudasim: launch of '%s' refused: grid (%u,%u,%u), block (%u,%u,%u), %zu bytes of dynamic shared memory\n",
        what, grid.x, grid.y, grid.z, block.x, block.y, block.z, shared_bytes);
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (injected(rt, "launch")) {
    fail(cudaErrorLaunchOutOfResources);
    return;
  }
  CUstream_st* s = nullptr;
  if (const cudaError_t e = resolve(rt, stream, &s)) {
    fail(e);
    return;
  }
  auto k = std::make_unique<KernelLaunch>();
  k->what = what;
  k->grid = grid;
  k->block = block;
  k->cc_major = rt.config.cc_major;
  k->cc_minor = rt.config.cc_minor;
  std::vector<uintptr_t> words = device_words(rt, *body);
  k->body = std::move(body);
  Task task(Task::Kind::kKernel);
  task.kernel = std::move(k);
  enqueue(rt, s, std::move(task), std::string("kernel '") + what + "'", std::move(words));
}

std::string schedule_name() {
  const Config c = config();
  return c.schedule == Schedule::kRoundRobin ? "rr"
         : c.schedule == Schedule::kReverse  ? "reverse"
                                             : "random:" + std::to_string(c.seed);
}

void set_schedule(Schedule schedule, uint64_t seed) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  rt.config.schedule = schedule;
  rt.config.seed = seed;
}

void set_compute_capability(int major, int minor) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  rt.config.cc_major = major;
  rt.config.cc_minor = minor;
}

void set_strict_free(bool strict) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  rt.config.strict_free = strict;
}

void fail_call(const std::string& api, int n) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  rt.fail_at[api] = rt.calls[api] + n;
}

std::string last_fault() {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  return rt.last_fault;
}

void clear_faults() {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  for (Device& d : rt.devices) d.sticky = cudaSuccess;
  rt.last_fault.clear();
  t_last = cudaSuccess;
}

}  // namespace cudasim

using cudasim::fail;
using cudasim::runtime;
using cudasim::Runtime;
using cudasim::t_device;
using cudasim::t_last;

cudaError_t cudaGetDeviceCount(int* count) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (cudasim::injected(rt, "cudaGetDeviceCount")) return fail(cudaErrorInitializationError);
  *count = static_cast<int>(rt.devices.size());
  return rt.devices.empty() ? fail(cudaErrorNoDevice) : cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (cudasim::injected(rt, "cudaSetDevice")) return fail(cudaErrorUnknown);
  if (rt.devices.empty()) return fail(cudaErrorNoDevice);
  if (device < 0 || device >= static_cast<int>(rt.devices.size())) return fail(cudaErrorInvalidDevice);
  t_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (rt.devices.empty()) return fail(cudaErrorNoDevice);
  *device = t_device;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (cudasim::injected(rt, "cudaGetDeviceProperties")) return fail(cudaErrorUnknown);
  if (device < 0 || device >= static_cast<int>(rt.devices.size())) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "cudasim simulated GPU (sm_%d%d)", rt.config.cc_major,
                rt.config.cc_minor);
  prop->totalGlobalMem = rt.config.memory;
  prop->sharedMemPerBlock = 48 * 1024;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->major = rt.config.cc_major;
  prop->minor = rt.config.cc_minor;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  Runtime& rt = runtime();
  std::unique_lock<std::mutex> lock(rt.mutex);
  cudasim::Device* d = nullptr;
  if (rt.devices.empty()) return fail(cudaErrorNoDevice);
  cudasim::wait_device(rt, lock, t_device);
  if (const cudaError_t e = cudasim::current_device(rt, &d)) return fail(e);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  cudasim::Device* d = nullptr;
  if (const cudaError_t e = cudasim::current_device(rt, &d)) return fail(e);
  if (cudasim::injected(rt, "cudaMalloc")) return fail(cudaErrorMemoryAllocation);
  if (bytes > rt.config.memory - d->used) return fail(cudaErrorMemoryAllocation);
  void* p = nullptr;
  // The sanitizer-visible heap, 256-byte aligned like cudaMalloc, exactly `bytes` long so that ASan's redzone
  // starts at the first byte past the allocation.
  if (posix_memalign(&p, 256, std::max<size_t>(bytes, 1)) != 0) return fail(cudaErrorMemoryAllocation);
  std::memset(p, 0xFF, bytes);  // NaN: a read of memory nothing wrote shows
  rt.allocations[reinterpret_cast<uintptr_t>(p)] = {bytes, t_device};
  d->used += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  Runtime& rt = runtime();
  std::unique_lock<std::mutex> lock(rt.mutex);
  uintptr_t base = 0;
  const cudasim::Allocation* a = cudasim::find_allocation(rt, ptr, 0, &base);
  if (a == nullptr || base != reinterpret_cast<uintptr_t>(ptr)) return fail(cudaErrorInvalidValue);
  const int device = a->device;
  const size_t bytes = a->bytes;
  // Strict: CUDA's cudaFree waits for the device, but native/cuda/context.cuh promises never to rely on that, so
  // memory still named by work the host has not waited for is a fault here.
  std::string culprit;
  if (rt.config.strict_free) {
    for (auto& [id, s] : rt.streams) {
      if (s->device != device) continue;
      for (const cudasim::Footprint& f : s->footprints) {
        if (f.seq <= s->host_synced) continue;
        for (uintptr_t w : f.words) {
          if (w >= base && w < base + std::max<size_t>(bytes, 1)) culprit = f.what;
        }
      }
    }
  }
  cudasim::wait_device(rt, lock, device);
  if (!culprit.empty()) {
    cudasim::report_fault(rt, device,
                          {cudaErrorIllegalAddress, "cudaFree of " + std::to_string(bytes) +
                                                        " bytes of device memory that queued work the host has not "
                                                        "waited for may still use: " +
                                                        culprit + " (CUDASIM_STRICT_FREE)"});
  }
  rt.allocations.erase(base);
  rt.uses.erase(base);
  rt.devices[static_cast<size_t>(device)].used -= bytes;
  free(ptr);
  const cudaError_t sticky = rt.devices[static_cast<size_t>(device)].sticky;
  return sticky != cudaSuccess ? fail(sticky) : cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  cudasim::Device* d = nullptr;
  if (const cudaError_t e = cudasim::current_device(rt, &d)) return fail(e);
  if (cudasim::injected(rt, "cudaMemcpyAsync")) return fail(cudaErrorUnknown);
  if (bytes == 0) return cudaSuccess;
  const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice) {
    return fail(cudaErrorInvalidValue);
  }
  // The device side must lie inside one allocation, the host side outside every one.
  if ((cudasim::find_allocation(rt, dst, bytes) != nullptr) != dst_device ||
      (cudasim::find_allocation(rt, src, bytes) != nullptr) != src_device) {
    return fail(cudaErrorInvalidValue);
  }
  CUstream_st* s = nullptr;
  if (const cudaError_t e = cudasim::resolve(rt, stream, &s)) return fail(e);
  cudasim::Task task(cudasim::Task::Kind::kCopy);
  task.dst = dst;
  task.src = src;
  task.bytes = bytes;
  std::vector<uintptr_t> words;
  if (dst_device) words.push_back(reinterpret_cast<uintptr_t>(dst));
  if (src_device) words.push_back(reinterpret_cast<uintptr_t>(src));
  cudasim::enqueue(rt, s, std::move(task), "cudaMemcpyAsync", std::move(words));
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  cudasim::Device* d = nullptr;
  if (const cudaError_t e = cudasim::current_device(rt, &d)) return fail(e);
  if (cudasim::injected(rt, "cudaStreamCreateWithFlags")) return fail(cudaErrorUnknown);
  if (flags != cudaStreamNonBlocking) return fail(cudaErrorInvalidValue);  // the only kind native/cuda creates
  *stream = cudasim::new_stream(rt, t_device);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  Runtime& rt = runtime();
  std::unique_lock<std::mutex> lock(rt.mutex);
  if (rt.devices.empty()) return fail(cudaErrorNoDevice);
  if (cudasim::injected(rt, "cudaStreamSynchronize")) return fail(cudaErrorUnknown);
  CUstream_st* s = nullptr;
  if (const cudaError_t e = cudasim::resolve(rt, stream, &s)) return fail(e);
  cudasim::wait_idle(rt, lock, s);
  const cudaError_t sticky = rt.devices[static_cast<size_t>(s->device)].sticky;
  return sticky != cudaSuccess ? fail(sticky) : cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  Runtime& rt = runtime();
  std::unique_lock<std::mutex> lock(rt.mutex);
  if (stream == nullptr) return fail(cudaErrorInvalidResourceHandle);
  auto it = rt.streams.find(stream->id);
  if (it == rt.streams.end() || it->second != stream) return fail(cudaErrorInvalidResourceHandle);
  // CUDA lets queued work finish after the call returns; here the call waits for it.
  cudasim::wait_idle(rt, lock, stream);
  stream->stop = true;
  rt.changed.notify_all();
  rt.streams.erase(it);
  for (auto& [base, uses] : rt.uses) uses.erase(stream->id);  // all of its work is complete and waited for
  lock.unlock();
  stream->worker.join();
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  cudasim::Device* d = nullptr;
  if (const cudaError_t e = cudasim::current_device(rt, &d)) return fail(e);
  if (cudasim::injected(rt, "cudaStreamWaitEvent")) return fail(cudaErrorUnknown);
  if (flags != 0 || rt.events.count(event) == 0) return fail(cudaErrorInvalidResourceHandle);
  CUstream_st* s = nullptr;
  if (const cudaError_t e = cudasim::resolve(rt, stream, &s)) return fail(e);
  if (event->state->recorded == 0) return cudaSuccess;  // never recorded: nothing to wait for
  cudasim::Task task(cudasim::Task::Kind::kWait);
  task.event = event->state;
  task.generation = event->state->recorded;
  cudasim::enqueue(rt, s, std::move(task), "", {});
  return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* user_data) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  cudasim::Device* d = nullptr;
  if (const cudaError_t e = cudasim::current_device(rt, &d)) return fail(e);
  if (cudasim::injected(rt, "cudaLaunchHostFunc")) return fail(cudaErrorUnknown);
  CUstream_st* s = nullptr;
  if (const cudaError_t e = cudasim::resolve(rt, stream, &s)) return fail(e);
  cudasim::Task task(cudasim::Task::Kind::kHost);
  task.fn = fn;
  task.data = user_data;
  cudasim::enqueue(rt, s, std::move(task), "", {});
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  cudasim::Device* d = nullptr;
  if (const cudaError_t e = cudasim::current_device(rt, &d)) return fail(e);
  if (cudasim::injected(rt, "cudaEventCreateWithFlags")) return fail(cudaErrorUnknown);
  if (flags != cudaEventDisableTiming) return fail(cudaErrorInvalidValue);  // the only kind native/cuda creates
  auto* e = new CUevent_st{std::make_shared<cudasim::EventState>()};
  e->state->device = t_device;
  rt.events.insert(e);
  *event = e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  cudasim::Device* d = nullptr;
  if (const cudaError_t e = cudasim::current_device(rt, &d)) return fail(e);
  if (cudasim::injected(rt, "cudaEventRecord")) return fail(cudaErrorUnknown);
  if (rt.events.count(event) == 0) return fail(cudaErrorInvalidResourceHandle);
  CUstream_st* s = nullptr;
  if (const cudaError_t e = cudasim::resolve(rt, stream, &s)) return fail(e);
  if (event->state->device != s->device) return fail(cudaErrorInvalidResourceHandle);
  cudasim::Task task(cudasim::Task::Kind::kRecord);
  task.event = event->state;
  task.generation = ++event->state->recorded;
  event->state->stream = s->id;
  event->state->stream_seq = s->enqueued + 1;
  cudasim::enqueue(rt, s, std::move(task), "", {});
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (cudasim::injected(rt, "cudaEventQuery")) return fail(cudaErrorUnknown);
  if (rt.events.count(event) == 0) return fail(cudaErrorInvalidResourceHandle);
  const cudasim::EventState& e = *event->state;
  const cudaError_t sticky = rt.devices[static_cast<size_t>(e.device)].sticky;
  if (sticky != cudaSuccess) return fail(sticky);
  if (e.completed < e.recorded) return cudaErrorNotReady;  // not an error: not remembered as the last one
  auto s = rt.streams.find(e.stream);
  if (s != rt.streams.end()) cudasim::mark_host_synced(rt, s->second, e.stream_seq);
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  Runtime& rt = runtime();
  std::unique_lock<std::mutex> lock(rt.mutex);
  if (rt.events.count(event) == 0) return fail(cudaErrorInvalidResourceHandle);
  const std::shared_ptr<cudasim::EventState> e = event->state;
  const uint64_t target = e->recorded;
  rt.changed.wait(lock, [&] { return e->completed >= target; });
  auto s = rt.streams.find(e->stream);
  if (s != rt.streams.end()) cudasim::mark_host_synced(rt, s->second, e->stream_seq);
  const cudaError_t sticky = rt.devices[static_cast<size_t>(e->device)].sticky;
  return sticky != cudaSuccess ? fail(sticky) : cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (rt.events.erase(event) == 0) return fail(cudaErrorInvalidResourceHandle);
  delete event;  // queued records and waits hold the state
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  const cudaError_t last = t_last;
  t_last = cudaSuccess;
  if (!rt.devices.empty() && rt.devices[static_cast<size_t>(t_device)].sticky != cudaSuccess) {
    return rt.devices[static_cast<size_t>(t_device)].sticky;
  }
  return last;
}

cudaError_t cudaPeekAtLastError() {
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (!rt.devices.empty() && rt.devices[static_cast<size_t>(t_device)].sticky != cudaSuccess) {
    return rt.devices[static_cast<size_t>(t_device)].sticky;
  }
  return t_last;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
#define CUDASIM_NAME(e) \
  case e:               \
    return #e;
    CUDASIM_NAME(cudaSuccess)
    CUDASIM_NAME(cudaErrorInvalidValue)
    CUDASIM_NAME(cudaErrorMemoryAllocation)
    CUDASIM_NAME(cudaErrorInitializationError)
    CUDASIM_NAME(cudaErrorInvalidConfiguration)
    CUDASIM_NAME(cudaErrorInsufficientDriver)
    CUDASIM_NAME(cudaErrorNoDevice)
    CUDASIM_NAME(cudaErrorInvalidDevice)
    CUDASIM_NAME(cudaErrorInvalidResourceHandle)
    CUDASIM_NAME(cudaErrorNotReady)
    CUDASIM_NAME(cudaErrorIllegalAddress)
    CUDASIM_NAME(cudaErrorLaunchOutOfResources)
    CUDASIM_NAME(cudaErrorAssert)
    CUDASIM_NAME(cudaErrorIllegalInstruction)
    CUDASIM_NAME(cudaErrorLaunchFailure)
    CUDASIM_NAME(cudaErrorUnknown)
#undef CUDASIM_NAME
  }
  return "cudaErrorUnrecognized";
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInitializationError:
      return "initialization error";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInsufficientDriver:
      return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorIllegalAddress:
      return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources:
      return "too many resources requested for launch";
    case cudaErrorAssert:
      return "device-side assert triggered";
    case cudaErrorIllegalInstruction:
      return "an illegal instruction was encountered";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
    case cudaErrorUnknown:
      return "unknown error";
  }
  return "unrecognized error code";
}
