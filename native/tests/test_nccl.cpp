// NCCL (built only when CUDA is on; docs/distributed.md). Without a GPU: the loader (cuda/nccl_library.h) over a
// missing library and the fakes of tests/fake_nccl.cpp. With a GPU: the communicator's failure paths and its
// stream ordering over the complete fake, then a one-rank communicator over the real libnccl.so.2
// ($DNFT_NCCL_LIBRARY), whose sums of odd-sized random buffers must return their input bit for bit. Device cases
// that cannot run print a `SKIPPED ...` line saying why.
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/buffer.h"
#include "core/device.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/nccl_library.h"
#include "tests/check.h"

using namespace dnft;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Runs `body`, which must throw an Error of `kind`; returns its message ("" when it did not throw).
template <typename F>
std::string error_of(Error::Kind kind, F&& body) {
  try {
    body();
  } catch (const Error& error) {
    CHECK(error.kind() == kind, "kind %d, message: %s", static_cast<int>(error.kind()), error.what());
    return error.what();
  }
  CHECK(false, "no error");
  return "";
}

// A world of one for the communicator's set-up: the broadcast keeps rank 0's bytes (and counts its calls), the
// statistics' sum is the identity.
struct OneRank : Communicator {
  int double_sums = 0;
  void sum(double*, size_t) override { ++double_sums; }
  void sum(Backend&, float*, size_t) override {}
};

NcclSetup one_rank(const std::shared_ptr<OneRank>& host, double timeout, std::vector<char>* token = nullptr) {
  NcclSetup setup;
  setup.timeout = timeout;
  setup.host = host;
  setup.broadcast = [token](void* data, size_t bytes) {
    if (token != nullptr) token->assign(static_cast<char*>(data), static_cast<char*>(data) + bytes);
  };
  return setup;
}

// The fake's knobs, found in the library the loader opened (dlopen of the same path returns the same handle).
struct Fake {
  void (*set_mode)(int);
  int (*aborts)();
  explicit Fake(const std::string& path) {
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    set_mode = reinterpret_cast<void (*)(int)>(dlsym(handle, "fake_nccl_set_mode"));
    aborts = reinterpret_cast<int (*)()>(dlsym(handle, "fake_nccl_aborts"));
  }
};

// Queues on `stream` a host function that sleeps `ms`, then sets `done`: work the NCCL stream must wait for.
void queue_delay(cudaStream_t stream, int ms, std::atomic<bool>* done) {
  struct Delay {
    int ms;
    std::atomic<bool>* done;
  };
  auto* delay = new Delay{ms, done};
  cuda::check(cudaLaunchHostFunc(
                  stream,
                  [](void* arg) {
                    auto* d = static_cast<Delay*>(arg);
                    std::this_thread::sleep_for(std::chrono::milliseconds(d->ms));
                    d->done->store(true);
                    delete d;
                  },
                  delay),
              "cudaLaunchHostFunc");
}

cudaStream_t stream_of(Backend& backend) { return static_cast<cuda::CudaBackend&>(backend).stream(); }

std::vector<test::Case> loader_cases() {
  return {
      {"a missing library is a kBackend error naming it, libnccl.so.2 and DNFT_NCCL_LIBRARY",
       [] {
         const std::string message =
             error_of(Error::Kind::kBackend, [] { cuda::load_nccl_library("/nonexistent/libnccl-test.so"); });
         CHECK(contains(message, "/nonexistent/libnccl-test.so"), "%s", message.c_str());
         CHECK(contains(message, "libnccl.so.2") && contains(message, "DNFT_NCCL_LIBRARY"), "%s", message.c_str());
       }},
      {"DNFT_NCCL_LIBRARY names the library; a failure is not remembered",
       [] {
         const char* before = std::getenv("DNFT_NCCL_LIBRARY");
         const std::string saved = before != nullptr ? before : "";
         setenv("DNFT_NCCL_LIBRARY", "/nonexistent/named-nccl.so", 1);
         const std::string first = error_of(Error::Kind::kBackend, [] { nccl_version(); });
         const std::string second = error_of(Error::Kind::kBackend, [] { nccl_version(); });
         CHECK(contains(first, "/nonexistent/named-nccl.so") && first == second, "%s | %s", first.c_str(),
               second.c_str());
         if (before != nullptr) {
           setenv("DNFT_NCCL_LIBRARY", saved.c_str(), 1);
         } else {
           unsetenv("DNFT_NCCL_LIBRARY");
         }
       }},
      {"a library lacking an entry point is a kBackend error naming it",
       [] {
         const std::string message =
             error_of(Error::Kind::kBackend, [] { cuda::load_nccl_library(DNFT_FAKE_NCCL_WITHOUT_ABORT); });
         CHECK(contains(message, "has no ncclCommAbort") && contains(message, DNFT_FAKE_NCCL_WITHOUT_ABORT), "%s",
               message.c_str());
       }},
      {"NCCL older than 2.14 is refused, naming its version",
       [] {
         const std::string message =
             error_of(Error::Kind::kBackend, [] { cuda::load_nccl_library(DNFT_FAKE_NCCL_OLD); });
         CHECK(contains(message, "NCCL 2.13.0") && contains(message, "2.14"), "%s", message.c_str());
       }},
      {"a complete library loads with its version",
       [] {
         const cuda::NcclLibrary lib = cuda::load_nccl_library(DNFT_FAKE_NCCL);
         CHECK(lib.version == 22105 && lib.comm_abort != nullptr && lib.get_last_error != nullptr, "%d", lib.version);
         CHECK(cuda::nccl_version_name(22105) == "2.21.5", "%s", cuda::nccl_version_name(22105).c_str());
         CHECK(cuda::nccl_version_name(2804) == "2.8.4", "%s", cuda::nccl_version_name(2804).c_str());
       }},
      {"the communicator needs a model on the GPU",
       [] {
         const cuda::NcclLibrary lib = cuda::load_nccl_library(DNFT_FAKE_NCCL);
         const std::string message = error_of(Error::Kind::kBackend, [&] {
           cuda::create_nccl_communicator(lib, cpu_backend(), one_rank(std::make_shared<OneRank>(), 0));
         });
         CHECK(contains(message, "device memory"), "%s", message.c_str());
       }},
  };
}

// The communicator over the fake: set-up, ordering and failures, with no NCCL installed.
std::vector<test::Case> fake_cases() {
  return {
      {"set-up: rank 0's token crosses the broadcast; statistics go to the host communicator",
       [] {
         Fake(DNFT_FAKE_NCCL).set_mode(0);
         std::unique_ptr<Backend> gpu = create_cuda_backend({});
         auto host = std::make_shared<OneRank>();
         std::vector<char> token;
         auto comm =
             cuda::create_nccl_communicator(cuda::load_nccl_library(DNFT_FAKE_NCCL), *gpu, one_rank(host, 1, &token));
         CHECK(token.size() == sizeof(int) + sizeof(NcclUniqueId), "%zu bytes", token.size());
         CHECK(token.size() > 4 && token[4] == 0 && token[5] == 1 && token.back() == 127, "the fake's id");
         double stats[5] = {1, 2, 3, 4, 5};
         comm->sum(stats, 5);
         CHECK(host->double_sums == 1, "%d", host->double_sums);
       }},
      {"the sum waits for the compute queued before it",
       [] {
         Fake(DNFT_FAKE_NCCL).set_mode(0);
         std::unique_ptr<Backend> gpu = create_cuda_backend({});
         auto comm = cuda::create_nccl_communicator(cuda::load_nccl_library(DNFT_FAKE_NCCL), *gpu,
                                                    one_rank(std::make_shared<OneRank>(), 5));
         Buffer<float> data(*gpu, 33);
         std::atomic<bool> done{false};
         queue_delay(stream_of(*gpu), 200, &done);
         comm->sum(*gpu, data.get(), 33);
         CHECK(done.load(), "sum returned before the compute it follows had run");
         gpu->synchronize();
       }},
      {"a set-up that never completes times out: kDistributed, the communicator aborted",
       [] {
         Fake fake(DNFT_FAKE_NCCL);
         fake.set_mode(1);
         std::unique_ptr<Backend> gpu = create_cuda_backend({});
         const auto start = std::chrono::steady_clock::now();
         const std::string message = error_of(Error::Kind::kDistributed, [&] {
           cuda::create_nccl_communicator(cuda::load_nccl_library(DNFT_FAKE_NCCL), *gpu,
                                          one_rank(std::make_shared<OneRank>(), 0.2));
         });
         const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
         CHECK(contains(message, "ncclCommInitRankConfig did not complete within 0.2 s"), "%s", message.c_str());
         CHECK(waited >= 0.2 && waited < 5, "%g s", waited);
         CHECK(fake.aborts() == 1, "%d aborts", fake.aborts());
       }},
      {"a failing collective: kDistributed naming NCCL's error, aborted, and refused afterwards",
       [] {
         Fake fake(DNFT_FAKE_NCCL);
         fake.set_mode(0);
         std::unique_ptr<Backend> gpu = create_cuda_backend({});
         auto comm = cuda::create_nccl_communicator(cuda::load_nccl_library(DNFT_FAKE_NCCL), *gpu,
                                                    one_rank(std::make_shared<OneRank>(), 5));
         fake.set_mode(2);
         Buffer<float> data(*gpu, 7);
         const std::string message = error_of(Error::Kind::kDistributed, [&] { comm->sum(*gpu, data.get(), 7); });
         CHECK(contains(message, "rank 0 of 1: NCCL: ncclReduce failed: fake NCCL error 6"), "%s", message.c_str());
         CHECK(fake.aborts() == 1, "%d aborts", fake.aborts());
         const std::string again = error_of(Error::Kind::kDistributed, [&] { comm->sum(*gpu, data.get(), 7); });
         CHECK(contains(again, "aborted after an earlier failure"), "%s", again.c_str());
       }},
  };
}

// One rank over the real NCCL: the sum of one rank is its input, bit for bit, also when the buffer is written by
// compute still queued when sum() is called.
std::vector<test::Case> real_cases() {
  return {{"one rank over libnccl.so.2: odd-sized random sums return their input, after queued compute", [] {
             std::unique_ptr<Backend> gpu = create_cuda_backend({});
             auto comm = create_nccl_communicator(*gpu, one_rank(std::make_shared<OneRank>(), 60));
             std::mt19937 rng(20261204);
             std::normal_distribution<float> normal(0.0f, 3.0f);
             for (size_t n : {size_t{1}, size_t{7}, size_t{1001}, size_t{65537}, size_t{(1 << 20) + 3}}) {
               std::vector<float> input(n), output(n, NAN);
               for (float& x : input) x = normal(rng);
               Buffer<float> data(*gpu, n), source(*gpu, n);
               gpu->copy_to_device(source.get(), input.data(), n * sizeof(float));
               gpu->fill(data.get(), 0.0f, n);
               gpu->synchronize();
               // Queued, not yet run when sum() starts: a delay, then the copy that writes the buffer summed.
               std::atomic<bool> done{false};
               queue_delay(stream_of(*gpu), 100, &done);
               gpu->copy(data.get(), source.get(), n * sizeof(float));
               comm->sum(*gpu, data.get(), n);
               CHECK(done.load(), "n = %zu: sum returned before the compute it follows", n);
               gpu->copy_to_host(output.data(), data.get(), n * sizeof(float));
               CHECK(std::memcmp(output.data(), input.data(), n * sizeof(float)) == 0, "n = %zu: the sum changed bits",
                     n);
             }
           }}};
}

}  // namespace

int main() {
  std::vector<test::Case> cases = loader_cases();
  const DeviceInfo info = device_info();
  if (!info.cuda_available) {
    std::printf("SKIPPED test_nccl device cases: no CUDA device is present (%s)\n", info.reason.c_str());
  } else {
    for (test::Case& c : fake_cases()) cases.push_back(std::move(c));
    try {
      // A probe that leaves the process's NCCL unopened: the loader cases above need it so (they run first).
      const cuda::NcclLibrary probe = cuda::load_nccl_library(cuda::nccl_library_path());
      std::printf("NCCL %s (%s)\n", cuda::nccl_version_name(probe.version).c_str(), probe.path.c_str());
      for (test::Case& c : real_cases()) cases.push_back(std::move(c));
    } catch (const Error& error) {
      std::printf("SKIPPED test_nccl one-rank NCCL case: %s\n", error.what());
    }
  }
  return test::run(cases);
}
