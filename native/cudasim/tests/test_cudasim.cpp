// The simulated GPU's own checks (docs/gpu.md, "The simulated GPU"): every check fires on a deliberately broken
// kernel or call and stays silent on the correct version; then the runtime's semantics (asynchronous streams,
// events, the error model, the fault injector, devices) and the defect it found in native/cuda. With --devices N it
// runs the device-count cases instead, which the main run starts as child processes under CUDASIM_DEVICES=N.
#include <cuda_runtime.h>
#include <mma.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/buffer.h"
#include "core/device.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/kernel.cuh"
#include "cudasim.h"
#include "tests/check.h"
#include "tests/options.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(TEST_ASAN)
#include <sanitizer/asan_interface.h>
#endif

using namespace dnft;

namespace {

constexpr int kThreads = 256;

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t created = nullptr;
    cuda::check(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    return created;
  }();
  return s;
}

// A device array of n values, uploaded from and downloaded to host vectors on the test's stream.
template <typename T>
struct DeviceArray {
  T* ptr = nullptr;
  size_t n;
  explicit DeviceArray(size_t count) : n(count) {
    cuda::check(cudaMalloc(reinterpret_cast<void**>(&ptr), n * sizeof(T)), "cudaMalloc");
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) {
    cuda::check(cudaMemcpyAsync(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice, stream()), "upload");
    cuda::check(cudaStreamSynchronize(stream()), "upload");
  }
  ~DeviceArray() { cudaFree(ptr); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  std::vector<T> host() const {
    std::vector<T> values(n);
    cuda::check(cudaMemcpyAsync(values.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost, stream()), "download");
    cuda::check(cudaStreamSynchronize(stream()), "download");
    return values;
  }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The stream's state after the work queued so far: silent (no error, no fault report) or one fault whose report
// names `part`; a fault is cleared afterwards, so that the next check starts on a healthy device.
void expect_silent(const char* what) {
  const cudaError_t status = cudaStreamSynchronize(stream());
  const std::string fault = cudasim::last_fault();
  CHECK(status == cudaSuccess && fault.empty(), "%s: %s, %s", what, cudaGetErrorName(status), fault.c_str());
}

void expect_fault(const char* what, cudaError_t code, const std::string& part) {
  const cudaError_t status = cudaStreamSynchronize(stream());
  const std::string fault = cudasim::last_fault();
  CHECK(status == code, "%s: %s instead of %s", what, cudaGetErrorName(status), cudaGetErrorName(code));
  CHECK(contains(fault, part), "%s: the report does not name '%s': %s", what, part.c_str(), fault.c_str());
  // Sticky: every later call on the device reports it until it is cleared.
  void* p = nullptr;
  CHECK(cudaMalloc(&p, 4) == code, "%s: the fault is not sticky", what);
  cudasim::clear_faults();
  CHECK(cudaGetLastError() == cudaSuccess, "%s: cleared", what);
}

// Launches a kernel meant to fault. The stream may run it and fault before the launch check reads the (sticky)
// error, so the launch itself may throw, as on a GPU: the fault is checked after the synchronisation instead.
template <typename... Params, typename... Args>
void launch_faulty(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
  try {
    cuda::launch(what, kernel, grid, block, 0, stream(), args...);
  } catch (const Error&) {
  }
}

// Runs `body` under a schedule, then restores the one the process started with.
template <typename F>
void with_schedule(cudasim::Schedule schedule, uint64_t seed, F&& body) {
  const std::string before = cudasim::schedule_name();
  cudasim::set_schedule(schedule, seed);
  body();
  if (before == "rr") {
    cudasim::set_schedule(cudasim::Schedule::kRoundRobin);
  } else if (before == "reverse") {
    cudasim::set_schedule(cudasim::Schedule::kReverse);
  } else {
    cudasim::set_schedule(cudasim::Schedule::kRandom, std::strtoull(before.c_str() + 7, nullptr, 10));
  }
}

std::vector<float> iota_values(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 97);
  return v;
}

// ---- Barriers and shared memory -------------------------------------------------------------------------------

// A tree sum of each block's kThreads values; without the first barrier, a thread may read a partner's value
// before the partner wrote it.
template <bool kFirstBarrier>
__global__ void tree_sum(const float* in, float* out) {
  DNFT_SHARED(float, buf, kThreads, 16);
  buf[threadIdx.x] = in[blockIdx.x * kThreads + threadIdx.x];
  if (kFirstBarrier) __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}

template <bool kFirstBarrier>
std::vector<float> tree_sums(cudasim::Schedule schedule, uint64_t seed) {
  const int blocks = 5;
  DeviceArray<float> in(iota_values(static_cast<size_t>(blocks) * kThreads)), out(blocks);
  std::vector<float> result;
  with_schedule(schedule, seed, [&] {
    cuda::launch("tree_sum", tree_sum<kFirstBarrier>, blocks, kThreads, 0, stream(), static_cast<const float*>(in.ptr),
                 out.ptr);
    result = out.host();
  });
  return result;
}

void missing_barrier() {
  std::vector<float> expected(5);
  const std::vector<float> in = iota_values(5 * kThreads);
  for (int b = 0; b < 5; ++b) {
    for (int t = 0; t < kThreads; ++t) expected[b] += in[static_cast<size_t>(b) * kThreads + t];
  }
  for (auto [schedule, seed] : {std::pair{cudasim::Schedule::kRoundRobin, 0}, std::pair{cudasim::Schedule::kReverse, 0},
                                std::pair{cudasim::Schedule::kRandom, 7}, std::pair{cudasim::Schedule::kRandom, 8}}) {
    CHECK(tree_sums<true>(schedule, static_cast<uint64_t>(seed)) == expected, "the correct sum under schedule %d",
          static_cast<int>(schedule));
  }
  expect_silent("correct tree sum");
  const std::vector<float> rr = tree_sums<false>(cudasim::Schedule::kRoundRobin, 0);
  const std::vector<float> reverse = tree_sums<false>(cudasim::Schedule::kReverse, 0);
  CHECK(std::memcmp(rr.data(), reverse.data(), rr.size() * sizeof(float)) != 0,
        "a missing barrier must change the result between schedules");
  CHECK(std::isnan(rr[0]), "round-robin reads the partner's value before it is written: NaN, got %g", rr[0]);
  expect_silent("a missing barrier is a read hazard, not a reported fault");
}

// Threads writing one shared word between two barriers: only thread 0 (mode 0), all the same value (mode 1,
// tolerated), or each its own value (mode 2: a race).
__global__ void shared_writes(int mode, float* out) {
  DNFT_SHARED(float, cell, 1, 4);
  if (mode == 0 && threadIdx.x == 0) cell[0] = 1.0f;
  if (mode == 1) cell[0] = 1.0f;
  if (mode == 2) cell[0] = static_cast<float>(threadIdx.x);
  __syncthreads();
  if (threadIdx.x == 0) out[0] = cell[0];
}

void shared_race() {
  DeviceArray<float> out(1);
  for (int mode : {0, 1}) {
    cuda::launch("shared_writes", shared_writes, 2, 64, 0, stream(), mode, out.ptr);
    expect_silent("one writer, or equal values");
  }
  launch_faulty("shared_writes", shared_writes, 2, 64, 2, out.ptr);
  expect_fault("two threads, two values", cudaErrorLaunchFailure, "shared-memory race");
}

__global__ void shared_overrun(int index, float* out) {
  DNFT_SHARED(float, row, 64, 16);
  row[threadIdx.x] = 0.0f;
  __syncthreads();
  if (threadIdx.x == 0) row[index] = 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = row[0];
}

void shared_overruns() {
  DeviceArray<float> out(1);
  cuda::launch("shared_overrun", shared_overrun, 1, 64, 0, stream(), 63, out.ptr);
  expect_silent("the last element");
  launch_faulty("shared_overrun", shared_overrun, 1, 64, 64, out.ptr);
  expect_fault("one past the end", cudaErrorIllegalAddress, "past the end of 'row'");
  launch_faulty("shared_overrun", shared_overrun, 1, 64, -1, out.ptr);
  expect_fault("one before the start", cudaErrorIllegalAddress, "before the start of 'row'");
}

// mode 0: one barrier for all; 1: two barriers on two branches; 2: a thread returns before the barrier.
__global__ void barriers(int mode, float* out) {
  if (mode == 1) {
    if (threadIdx.x < 32) {
      __syncthreads();
    } else {
      __syncthreads();
    }
  }
  if (mode == 2 && threadIdx.x == 5) return;
  if (mode != 1) __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = 1.0f;
}

void barrier_misuse() {
  DeviceArray<float> out(3);
  cuda::launch("barriers", barriers, 3, 128, 0, stream(), 0, out.ptr);
  expect_silent("one barrier");
  launch_faulty("barriers", barriers, 3, 128, 1, out.ptr);
  expect_fault("divergent barriers", cudaErrorIllegalInstruction, "divergent __syncthreads");
  launch_faulty("barriers", barriers, 3, 128, 2, out.ptr);
  expect_fault("an early exit", cudaErrorIllegalInstruction, "exited while others wait");
}

void barrier_report_names_threads() {
  DeviceArray<float> out(3);
  launch_faulty("barriers", barriers, 3, 128, 1, out.ptr);
  cudaStreamSynchronize(stream());
  const std::string fault = cudasim::last_fault();
  CHECK(contains(fault, "threads 0-31: waiting at __syncthreads at test_cudasim.cpp:") &&
            contains(fault, "threads 32-127: waiting at __syncthreads at test_cudasim.cpp:"),
        "%s", fault.c_str());
  CHECK(contains(fault, "kernel 'barriers', block ("), "%s", fault.c_str());
  cudasim::clear_faults();
}

__global__ void shared_read(bool write_first, float* out) {
  DNFT_SHARED(float, buf, 32, 16);
  if (write_first) buf[threadIdx.x] = 2.0f;
  __syncthreads();
  out[threadIdx.x] = buf[threadIdx.x];
}

void uninitialised_memory() {
  DeviceArray<float> out(32);
  cuda::launch("shared_read", shared_read, 1, 32, 0, stream(), true, out.ptr);
  CHECK(out.host() == std::vector<float>(32, 2.0f), "written first");
  cuda::launch("shared_read", shared_read, 1, 32, 0, stream(), false, out.ptr);
  bool nan = true;
  for (float v : out.host()) nan = nan && std::isnan(v);
  CHECK(nan, "shared memory nothing wrote reads as NaN");
  DeviceArray<float> fresh(7);
  nan = true;
  for (float v : fresh.host()) nan = nan && std::isnan(v);
  CHECK(nan, "device memory from cudaMalloc reads as NaN");
  expect_silent("reads");
}

// ---- Launches ------------------------------------------------------------------------------------------------

__global__ void mark(float* out) {
  if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0) out[0] = 3.0f;
}

template <int kFloats>
__global__ void big_shared(float* out) {
  DNFT_SHARED(float, big, kFloats, 16);
  big[threadIdx.x] = 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = big[0];
}

// Launches that CUDA refuses: a kBackend error at the launch, not sticky.
void launch_limits() {
  DeviceArray<float> out(1);
  struct Bad {
    dim3 grid, block;
    size_t shared;
  };
  for (const Bad& bad : {Bad{1, 1025, 0}, Bad{1, dim3(32, 1, 65), 0}, Bad{dim3(1, 65536), 32, 0}, Bad{0, 32, 0},
                         Bad{1, 32, 48 * 1024 + 1}}) {
    bool threw = false;
    try {
      cuda::launch("mark", mark, bad.grid, bad.block, bad.shared, stream(), out.ptr);
    } catch (const Error& e) {
      threw = e.kind() == Error::Kind::kBackend && contains(e.what(), "invalid configuration argument");
    }
    CHECK(threw, "grid (%u,%u) block (%u,%u,%u) shared %zu must be refused", bad.grid.x, bad.grid.y, bad.block.x,
          bad.block.y, bad.block.z, bad.shared);
  }
  cuda::launch("mark", mark, dim3(1, 65535), 1024, 48 * 1024, stream(), out.ptr);
  CHECK(out.host()[0] == 3.0f, "the largest legal launch runs");
  expect_silent("launch limits are not sticky");
  cuda::launch("big_shared", big_shared<12288>, 1, 32, 0, stream(), out.ptr);
  expect_silent("48 KiB of shared memory");
  launch_faulty("big_shared", big_shared<12289>, 1, 32, out.ptr);
  expect_fault("48 KiB + 4 bytes", cudaErrorLaunchOutOfResources, "over the 48 KiB limit");
}

// ---- WMMA ----------------------------------------------------------------------------------------------------

using FragA =
    nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 8, nvcuda::wmma::precision::tf32, nvcuda::wmma::row_major>;
using FragB =
    nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 8, nvcuda::wmma::precision::tf32, nvcuda::wmma::row_major>;
using FragC = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float>;

// C (16 × 16) = A (16 × 8, ldm lda, from A + offset) · B (8 × 16) + C, by the first `lanes` threads of each block.
__global__ void wmma_tile(const float* A, const float* B, float* C, int lanes, int offset, unsigned lda, int layout) {
  using namespace nvcuda;
  if (static_cast<int>(threadIdx.x) >= lanes) return;
  FragA a;
  FragB b;
  FragC c;
  wmma::fill_fragment(c, 0.5f);
  wmma::load_matrix_sync(a, A + offset, lda);
  for (int e = 0; e < a.num_elements; ++e) a.x[e] = wmma::__float_to_tf32(a.x[e]);
  wmma::load_matrix_sync(b, B, 16);
  for (int e = 0; e < b.num_elements; ++e) b.x[e] = wmma::__float_to_tf32(b.x[e]);
  wmma::mma_sync(c, a, b, c);
  wmma::store_matrix_sync(C, c, 16, layout == 0 ? wmma::mem_row_major : wmma::mem_col_major);
}

struct WmmaCase {
  std::vector<float> a, b;
  DeviceArray<float> A, B, C;
  WmmaCase() : a(random_values(16 * 8 + 8)), b(random_values(8 * 16)), A(a), B(b), C(256) {}
  static std::vector<float> random_values(size_t n) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> uni(-2.0f, 2.0f);
    std::vector<float> v(n);
    for (float& x : v) x = uni(rng);
    return v;
  }
  // Misuse faults; a correct run's result and silence are checked after it.
  void run(int threads, int lanes, int offset, unsigned lda, int layout = 0) {
    launch_faulty("wmma_tile", wmma_tile, 1, threads, static_cast<const float*>(A.ptr),
                  static_cast<const float*>(B.ptr), C.ptr, lanes, offset, lda, layout);
  }
};

void wmma_product() {
  using nvcuda::wmma::__float_to_tf32;
  WmmaCase w;
  // The reference: TF32-rounded inputs, exact products, FP32 sums in k order from the accumulator's 0.5.
  std::vector<float> expected(256);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      float acc = 0.5f;
      for (int k = 0; k < 8; ++k) acc += __float_to_tf32(w.a[i * 8 + k]) * __float_to_tf32(w.b[k * 16 + j]);
      expected[i * 16 + j] = acc;
    }
  }
  w.run(32, 32, 0, 8);
  CHECK(w.C.host() == expected, "the 16 x 16 TF32 product, bit for bit");
  w.run(32, 32, 0, 8, 1);
  const std::vector<float> transposed = w.C.host();
  bool same = true;
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) same = same && transposed[j * 16 + i] == expected[i * 16 + j];
  }
  CHECK(same, "mem_col_major stores the transpose");
  expect_silent("a full warp");
}

void wmma_misuse() {
  WmmaCase w;
  w.run(32, 16, 0, 8);
  expect_fault("half a warp", cudaErrorIllegalInstruction, "part of its warp never reaches");
  w.run(48, 48, 0, 8);
  expect_fault("a block of 48 threads", cudaErrorIllegalInstruction, "needs a full warp");
  w.run(32, 32, 1, 8);
  expect_fault("a misaligned pointer", cudaErrorIllegalAddress, "not 32-byte aligned");
  w.run(32, 32, 0, 6);
  expect_fault("ldm 6", cudaErrorIllegalInstruction, "ldm 6");
  cudasim::set_compute_capability(7, 5);
  w.run(32, 32, 0, 8);
  expect_fault("compute capability 7.5", cudaErrorIllegalInstruction, "needs compute capability 8.0");
  cudasim::set_compute_capability(8, 0);
  w.run(32, 32, 0, 8);
  expect_silent("back on 8.0");
}

float from_bits(uint32_t bits) {
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

void tf32_rounding() {
  using nvcuda::wmma::__float_to_tf32;
  const float tie = 1.0f + std::ldexp(1.0f, -11);  // halfway between 1 and the next TF32 value, 1 + 2^-10
  CHECK(__float_to_tf32(tie) == 1.0f + std::ldexp(1.0f, -10), "a tie rounds away from zero (nearest-even gives 1)");
  CHECK(__float_to_tf32(-tie) == -(1.0f + std::ldexp(1.0f, -10)), "and so does a negative one");
  CHECK(__float_to_tf32(std::nextafter(tie, 0.0f)) == 1.0f, "below the tie rounds down");
  CHECK(__float_to_tf32(1.0f + std::ldexp(1.0f, -10)) == 1.0f + std::ldexp(1.0f, -10), "TF32 values are kept");
  CHECK(std::isnan(__float_to_tf32(from_bits(0x7FC00001))), "NaN stays NaN");
  CHECK(std::isinf(__float_to_tf32(INFINITY)), "infinity stays infinity");
  uint32_t bits;
  const float r = __float_to_tf32(3.14159265f);
  std::memcpy(&bits, &r, sizeof bits);
  CHECK((bits & 0x1FFF) == 0, "the 13 low bits are cleared");
}

// ---- Runtime semantics ---------------------------------------------------------------------------------------

__global__ void read_into(const float* in, float* out) {
  if (threadIdx.x == 0) out[0] = in[0];
}

void asynchronous_streams() {
  // The host function waits for a flag the host sets after queueing it: a synchronous queue would never return.
  struct Flag {
    std::atomic<bool> set{false}, seen{false};
  } flag;
  cuda::check(cudaLaunchHostFunc(
                  stream(),
                  [](void* p) {
                    auto* f = static_cast<Flag*>(p);
                    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                    while (!f->set.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
                    f->seen.store(f->set.load());
                  },
                  &flag),
              "cudaLaunchHostFunc");
  flag.set.store(true);
  expect_silent("host function");
  CHECK(flag.seen.load(), "the stream ran after the call returned");
}

void cross_stream_events() {
  cudaStream_t other = nullptr;
  cudaEvent_t done = nullptr;
  cuda::check(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), "stream");
  cuda::check(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "event");
  CHECK(cudaEventQuery(done) == cudaSuccess, "an event never recorded is complete");
  struct Order {
    std::atomic<int> step{0};
    int seen = -1;
  } order;
  cuda::check(cudaLaunchHostFunc(
                  other,
                  [](void* p) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(100));
                    static_cast<Order*>(p)->step.store(1);
                  },
                  &order),
              "slow producer");
  cuda::check(cudaEventRecord(done, other), "record");
  CHECK(cudaEventQuery(done) == cudaErrorNotReady, "not yet complete");
  CHECK(cudaGetLastError() == cudaSuccess, "not ready is no error");
  cuda::check(cudaStreamWaitEvent(stream(), done, 0), "wait");
  cuda::check(
      cudaLaunchHostFunc(
          stream(), [](void* p) { static_cast<Order*>(p)->seen = static_cast<Order*>(p)->step.load(); }, &order),
      "consumer");
  expect_silent("events");
  CHECK(order.seen == 1, "the consumer ran before the producer it waits for (saw %d)", order.seen);
  CHECK(cudaEventQuery(done) == cudaSuccess, "complete");
  cudaEventDestroy(done);
  cudaStreamDestroy(other);
}

// A buffer written on one stream and read on another: ordered by an event or a host wait, or a reported fault.
void stream_order() {
  cudaStream_t other = nullptr;
  cudaEvent_t written = nullptr;
  cuda::check(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), "stream");
  cuda::check(cudaEventCreateWithFlags(&written, cudaEventDisableTiming), "event");
  DeviceArray<float> buffer(1), copy(1);
  auto write_then_read = [&](int order) {
    cuda::check(cudaStreamSynchronize(stream()), "sync");
    cuda::launch("mark", mark, 1, 32, 0, other, buffer.ptr);
    if (order == 1) {
      cuda::check(cudaEventRecord(written, other), "record");
      cuda::check(cudaStreamWaitEvent(stream(), written, 0), "wait");
    }
    if (order == 2) cuda::check(cudaStreamSynchronize(other), "host wait");
    launch_faulty("read_into", read_into, 1, 32, static_cast<const float*>(buffer.ptr), copy.ptr);
  };
  write_then_read(1);
  expect_silent("ordered by an event");
  CHECK(copy.host()[0] == 3.0f, "the reader saw the write");
  write_then_read(2);
  expect_silent("ordered by the host");
  write_then_read(0);
  cudaStreamSynchronize(other);
  expect_fault("unordered", cudaErrorIllegalAddress, "no event or host wait orders the two");
  cudaEventDestroy(written);
  cudaStreamDestroy(other);
}

void errors_and_injection() {
  void* p = nullptr;
  CHECK(cudaMalloc(&p, size_t{1} << 47) == cudaErrorMemoryAllocation, "128 TiB is out of memory");
  CHECK(cudaGetLastError() == cudaErrorMemoryAllocation && cudaGetLastError() == cudaSuccess,
        "out of memory is the last error once: not sticky");
  CHECK(cudaMalloc(&p, 64) == cudaSuccess && cudaFree(p) == cudaSuccess, "usable after");
  cudasim::fail_call("cudaMalloc", 2);
  CHECK(cudaMalloc(&p, 64) == cudaSuccess && cudaFree(p) == cudaSuccess, "the first call still works");
  CHECK(cudaMalloc(&p, 64) == cudaErrorMemoryAllocation, "the second fails");
  CHECK(cudaGetLastError() == cudaErrorMemoryAllocation, "as the last error");
  CHECK(cudaMalloc(&p, 64) == cudaSuccess && cudaFree(p) == cudaSuccess, "the third works");
  DeviceArray<float> out(1);
  cudasim::fail_call("launch", 1);
  bool threw = false;
  try {
    cuda::launch("mark", mark, 1, 32, 0, stream(), out.ptr);
  } catch (const Error& e) {
    threw = contains(e.what(), "too many resources requested for launch");
  }
  CHECK(threw, "an injected launch failure is a kBackend error");
  expect_silent("launch failures are not sticky");
  cudasim::fail_call("kernel", 1);
  launch_faulty("mark", mark, 1, 32, out.ptr);
  expect_fault("an injected kernel fault", cudaErrorLaunchFailure, "injected fault");
  CHECK(cudaMemcpyAsync(out.ptr, &p, 16, cudaMemcpyHostToDevice, stream()) == cudaErrorInvalidValue,
        "a copy past the end of an allocation is refused");
  CHECK(cudaMemcpyAsync(&p, out.ptr, 4, cudaMemcpyHostToDevice, stream()) == cudaErrorInvalidValue,
        "a copy in the wrong direction is refused");
  cudaGetLastError();
}

// Strict free: freeing memory that queued work may still use, before the host waited for it.
void strict_free() {
  cudasim::set_strict_free(true);
  DeviceArray<float> out(1);
  float* in = nullptr;
  cuda::check(cudaMalloc(reinterpret_cast<void**>(&in), 64), "cudaMalloc");
  cuda::launch("read_into", read_into, 1, 32, 0, stream(), static_cast<const float*>(in), out.ptr);
  cuda::check(cudaStreamSynchronize(stream()), "sync");
  CHECK(cudaFree(in) == cudaSuccess, "a free after the host waited is fine");
  cuda::check(cudaMalloc(reinterpret_cast<void**>(&in), 64), "cudaMalloc");
  cuda::launch("read_into", read_into, 1, 32, 0, stream(), static_cast<const float*>(in), out.ptr);
  CHECK(cudaFree(in) == cudaErrorIllegalAddress, "a free while the kernel may still read it");
  CHECK(contains(cudasim::last_fault(), "kernel 'read_into'"), "%s", cudasim::last_fault().c_str());
  cudasim::clear_faults();
  cudasim::set_strict_free(false);
}

// The defect the simulator found in native/cuda: attention_backward leaves its kernels reading the scratch buffer;
// a larger scratch request right after (here nft_loss's row losses) freed it under them, safe only because
// cudaFree waits for the device, contrary to cuda/context.cuh's rule. Scratch::get now waits for the stream.
void scratch_outlives_queued_kernels() {
  cudasim::set_strict_free(true);
  try {
    std::unique_ptr<Backend> gpu = create_cuda_backend({});
    const int B = 1, T = 2, H = 1, d = 1, rows = 4, D = 3;
    Buffer<float> qkv(*gpu, 3 * T), dout(*gpu, T), probs(*gpu, T * T), dqkv(*gpu, 3 * T), v(*gpu, rows * D),
        dv(*gpu, rows * D), t(*gpu, rows);
    for (Buffer<float>* b : {&qkv, &dout, &probs, &v, &t}) gpu->fill(b->get(), 0.5f, b->size());
    gpu->attention_backward(dqkv.get(), dout.get(), qkv.get(), probs.get(), B, T, H, d);
    const double loss = gpu->nft_loss(dv.get(), v.get(), v.get(), nullptr, v.get(), t.get(), t.get(), rows, D,
                                      test::nft_loss_params(), 1.0f);
    CHECK(std::isfinite(loss), "%g", loss);
    gpu->synchronize();
  } catch (const Error& e) {
    CHECK(false, "%s", e.what());
  }
  CHECK(cudasim::last_fault().empty(), "%s", cudasim::last_fault().c_str());
  cudasim::clear_faults();
  cudasim::set_strict_free(false);
}

// Two host threads, each with a backend of its own, at once (as the addon's worker threads do).
void host_threads() {
  std::atomic<int> good{0};
  auto work = [&good](float value) {
    try {
      std::unique_ptr<Backend> gpu = create_cuda_backend({});
      Buffer<float> x(*gpu, 10007);
      for (int i = 0; i < 5; ++i) gpu->fill(x.get(), value, x.size());
      if (gpu->sum_squares(x.get(), x.size()) == static_cast<double>(value) * value * 10007) ++good;
    } catch (const Error& e) {
      std::printf("  host thread: %s\n", e.what());
    }
  };
  std::thread a(work, 2.0f), b(work, 3.0f);
  a.join();
  b.join();
  CHECK(good.load() == 2, "%d of 2 threads got their sums", good.load());
}

#if defined(TEST_ASAN)
// Where thread 1 keeps a local array; it is still waiting at a barrier, its frames live, when thread 0 traps.
std::atomic<uintptr_t> waiting_frame{0};

__global__ void trap_while_others_wait(float* out) {
  float local[16];
  for (int i = 0; i < 16; ++i) local[i] = static_cast<float>(threadIdx.x) + static_cast<float>(i);
  if (threadIdx.x == 1) waiting_frame.store(reinterpret_cast<uintptr_t>(local));
  __syncthreads();
  if (threadIdx.x == 0) __trap();
  __syncthreads();
  float sum = 0.0f;
  for (float v : local) sum += v;
  out[threadIdx.x] = sum;
}

// A stream's fiber stacks are unmapped when it ends; the frames left on them (here those of the threads a fault
// abandoned) must not stay poisoned in ASan's shadow, or a later mapping at those addresses (another stream's fiber
// stack) reports its own locals as stack overflows.
void fiber_stacks_leave_no_shadow() {
  cudaStream_t own = nullptr;
  cuda::check(cudaStreamCreateWithFlags(&own, cudaStreamNonBlocking), "stream");
  DeviceArray<float> out(64);
  try {
    cuda::launch("trap_while_others_wait", trap_while_others_wait, 1, 64, 0, own, out.ptr);
  } catch (const Error&) {
  }
  CHECK(cudaStreamSynchronize(own) == cudaErrorLaunchFailure, "the trap faults");
  cudasim::clear_faults();
  const auto* frame = reinterpret_cast<const char*>(waiting_frame.load());
  CHECK(frame != nullptr, "the waiting thread recorded its frame");
  CHECK(__asan_region_is_poisoned(const_cast<char*>(frame) - 2048, 4096) != nullptr,
        "the abandoned frames keep their redzones while the stream lives");
  cuda::check(cudaStreamDestroy(own), "stream destroy");  // its OS thread ends, and with it its executor
  const void* left = __asan_region_is_poisoned(const_cast<char*>(frame) - 2048, 4096);
  CHECK(left == nullptr, "poisoned shadow left at %p, %td bytes from the unmapped frame", left,
        static_cast<const char*>(left) - frame);
}
#endif

void schedule_is_printed() {
  const std::string name = cudasim::schedule_name();
  CHECK(name == "rr" || name == "reverse" || (name.rfind("random:", 0) == 0 && name.size() > 7), "%s", name.c_str());
}

// ---- Devices (child processes under CUDASIM_DEVICES) ---------------------------------------------------------

int device_cases(int devices) {
  std::vector<test::Case> cases;
  if (devices == 0) {
    cases.push_back({"no device: cudaGetDeviceCount fails, device_info says why, the backend refuses", [] {
                       int count = -1;
                       CHECK(cudaGetDeviceCount(&count) == cudaErrorNoDevice && count == 0, "count %d", count);
                       const DeviceInfo info = device_info();
                       CHECK(!info.cuda_available && contains(info.reason, "no CUDA-capable device"), "%s",
                             info.reason.c_str());
                       bool threw = false;
                       try {
                         create_cuda_backend({});
                       } catch (const Error& e) {
                         threw = e.kind() == Error::Kind::kBackend && contains(e.what(), "not available");
                       }
                       CHECK(threw, "create_cuda_backend must throw");
                     }});
  } else {
    cases.push_back({"two devices: each backend on its own, work only on the current device's streams", [] {
                       int count = 0;
                       CHECK(cudaGetDeviceCount(&count) == cudaSuccess && count == 2, "count %d", count);
                       std::unique_ptr<Backend> second = create_cuda_backend({1});
                       std::unique_ptr<Backend> first = create_cuda_backend({0});
                       Buffer<float> x(*first, 100);
                       first->fill(x.get(), 1.0f, 100);
                       CHECK(first->sum_squares(x.get(), 100) == 100.0, "device 0");
                       second->activate();
                       Buffer<float> y(*second, 100);
                       second->fill(y.get(), 2.0f, 100);
                       CHECK(second->sum_squares(y.get(), 100) == 400.0, "device 1");
                       first->activate();  // the current device is 0: device 1's stream is not usable
                       bool threw = false;
                       try {
                         second->fill(y.get(), 3.0f, 100);
                       } catch (const Error& e) {
                         threw = contains(e.what(), "invalid resource handle");
                       }
                       CHECK(threw, "a launch on another device's stream must fail");
                       second->activate();
                       CHECK(second->sum_squares(y.get(), 100) == 400.0, "device 1 after activate()");
                       first->activate();
                     }});
  }
  return test::run(cases);
}

void device_counts() {
  char self[4096] = {};
  CHECK(readlink("/proc/self/exe", self, sizeof self - 1) > 0, "the test's own path");
  for (int devices : {0, 2}) {
    const std::string command = "CUDASIM_DEVICES=" + std::to_string(devices) + " '" + self + "' --devices " +
                                std::to_string(devices) + " >cudasim-devices.log 2>&1";
    const int status = std::system(command.c_str());
    if (status != 0) std::system("cat cudasim-devices.log");
    CHECK(status == 0, "CUDASIM_DEVICES=%d: exit status %d", devices, status);
  }
  std::remove("cudasim-devices.log");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--devices") == 0) return device_cases(std::atoi(argv[2]));
  std::vector<test::Case> cases = {
      {"schedules: a missing barrier changes the result; the correct sum is the same in every order", missing_barrier},
      {"race check: two threads writing one shared word with different values", shared_race},
      {"redzones: shared writes past either end of an array", shared_overruns},
      {"barriers: divergent barriers and early exits", barrier_misuse},
      {"barrier faults name every thread's state", barrier_report_names_threads},
      {"NaN fill: shared and device memory nothing wrote", uninitialised_memory},
      {"launch limits: threads, grid, shared memory", launch_limits},
      {"WMMA: the TF32 tile product, bit for bit, in both store layouts", wmma_product},
      {"WMMA misuse: part of a warp, a partial warp, alignment, ldm, compute capability", wmma_misuse},
      {"TF32 rounding: to nearest, ties away from zero", tf32_rounding},
      {"streams run asynchronously", asynchronous_streams},
      {"events order work across streams", cross_stream_events},
      {"stream order: a buffer used on two streams needs an event or a host wait", stream_order},
      {"errors: out of memory, injected failures, sticky faults, bad copies", errors_and_injection},
      {"strict free: memory freed under queued work", strict_free},
      {"native/cuda: the scratch buffer outlives the kernels queued on it", scratch_outlives_queued_kernels},
      {"two host threads, two backends", host_threads},
      {"the schedule is named", schedule_is_printed},
      {"devices: none, and two", device_counts},
  };
#if defined(TEST_ASAN)  // the shadow it checks exists in an AddressSanitizer build only
  cases.push_back(
      {"fiber stacks leave no poisoned shadow behind when their stream ends", fiber_stacks_leave_no_shadow});
#endif
  const int status = test::run(cases);
  cudaStreamDestroy(stream());
  return status;
}
