// The gradient sum of a model on the GPU over NCCL (docs/distributed.md). One communicator per model: rank 0's
// rendezvous token travels over MPI, the communicator is non-blocking (every call returns at once and is polled, so
// that none can hang past the timeout), and its collectives run on a stream of their own, ordered after the
// model's compute by an event and before the compute that follows by another.
//
// The sum is ncclReduce to rank 0 followed by ncclBroadcast from rank 0, not ncclAllReduce: the broadcast sends
// rank 0's bits, so every rank holds the same gradient by construction (θ must stay bit-identical on every rank),
// as the MPI path does. ncclAllReduce gives the same bits on every rank in NCCL's current algorithms, but NCCL does
// not document it, and a one-ulp divergence would grow silently; the pair costs about the same bandwidth (each
// moves the buffer about once through every link) at the price of a second launch's latency.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "core/device.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/nccl_library.h"

namespace dnft {

namespace cuda {

namespace {

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const NcclLibrary& library, CudaBackend& backend, const NcclSetup& setup)
      : nccl_(library),
        backend_(backend),
        device_(backend.device()),
        rank_(setup.rank),
        size_(setup.size),
        timeout_(setup.timeout),
        host_(setup.host) {
    try {
      open(setup);
    } catch (...) {
      release();
      throw;
    }
  }

  ~NcclCommunicator() override {
    // Destructors cannot report errors: a communicator that does not finalise in time is aborted instead.
    cudaSetDevice(device_);
    if (comm_ != nullptr) {
      if (poll(nccl_.comm_finalize(comm_)) == kNcclSuccess) {
        nccl_.comm_destroy(comm_);
      } else {
        nccl_.comm_abort(comm_);
      }
    }
    release();
  }

  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  void sum(double* values, size_t count) override { host_->sum(values, count); }

  void sum(Backend& backend, float* data, size_t count) override {
    if (&backend != &backend_) throw Error(Error::Kind::kState, "an NCCL communicator sums its own model's memory");
    if (comm_ == nullptr) {
      throw Error(Error::Kind::kDistributed,
                  "rank " + std::to_string(rank_) + ": the NCCL communicator was aborted after an earlier failure");
    }
    if (count == 0) return;
    const cudaStream_t compute = backend_.stream();
    check(cudaEventRecord(computed_, compute), "cudaEventRecord (before the NCCL sum)");
    check(cudaStreamWaitEvent(stream_, computed_, 0), "cudaStreamWaitEvent (NCCL after compute)");
    settle(nccl_.reduce(data, data, count, kNcclFloat32, kNcclSum, 0, comm_, stream_), "ncclReduce");
    settle(nccl_.broadcast(data, data, count, kNcclFloat32, 0, comm_, stream_), "ncclBroadcast");
    check(cudaEventRecord(summed_, stream_), "cudaEventRecord (after the NCCL sum)");
    check(cudaStreamWaitEvent(compute, summed_, 0), "cudaStreamWaitEvent (compute after NCCL)");
    // Wait here, polling, so that a rank that died or hangs ends in an error rather than a stream that never drains.
    const auto start = std::chrono::steady_clock::now();
    auto pause = std::chrono::microseconds(1);
    for (;;) {
      const cudaError_t done = cudaEventQuery(summed_);
      if (done == cudaSuccess) return;
      if (done != cudaErrorNotReady) check(done, "the NCCL sum of the gradients");
      NcclResult state = kNcclSuccess;
      const NcclResult result = nccl_.comm_get_async_error(comm_, &state);
      if (result != kNcclSuccess || (state != kNcclSuccess && state != kNcclInProgress)) {
        fail("the sum of the gradients failed: " + describe(result != kNcclSuccess ? result : state));
      }
      if (timeout_ > 0 && seconds_since(start) > timeout_) fail("the sum of the gradients" + late());
      std::this_thread::sleep_for(pause);
      if (pause < std::chrono::microseconds(500)) pause *= 2;
    }
  }

 private:
  // The stream, the events and the communicator (collective: every rank at once).
  void open(const NcclSetup& setup) {
    backend_.activate();
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags (NCCL)");
    check(cudaEventCreateWithFlags(&computed_, cudaEventDisableTiming), "cudaEventCreate (NCCL)");
    check(cudaEventCreateWithFlags(&summed_, cudaEventDisableTiming), "cudaEventCreate (NCCL)");
    // Rank 0 creates the token and sends it with its status, so that its failure stops every rank at once.
    struct {
      int status;
      NcclUniqueId id;
    } token{};
    if (rank_ == 0) token.status = nccl_.get_unique_id(&token.id);
    setup.broadcast(&token, sizeof token);
    if (token.status != kNcclSuccess) {
      throw Error(Error::Kind::kBackend,
                  "rank 0 could not create NCCL's rendezvous token: " +
                      std::string(nccl_.get_error_string(static_cast<NcclResult>(token.status))));
    }
    NcclConfig config{sizeof(NcclConfig), kNcclConfigMagic, kNcclConfigVersion, 0};
    settle(nccl_.comm_init_rank_config(&comm_, size_, token.id, rank_, &config), "ncclCommInitRankConfig");
  }

  static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::string late() const {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", timeout_);
    return std::string(" did not complete within ") + seconds + " s (a rank died, hangs or is far behind)";
  }

  std::string describe(NcclResult result) const {
    std::string text = nccl_.get_error_string(result);
    const char* last = comm_ != nullptr ? nccl_.get_last_error(comm_) : nullptr;
    if (last != nullptr && *last != '\0') text += std::string(" (") + last + ")";
    return text;
  }

  // The final state of a call on the non-blocking communicator: polled while it is in progress, for at most the
  // timeout (kNcclInProgress when that passes).
  NcclResult poll(NcclResult result) const {
    const auto start = std::chrono::steady_clock::now();
    auto pause = std::chrono::microseconds(1);
    while (result == kNcclInProgress && comm_ != nullptr) {
      if (timeout_ > 0 && seconds_since(start) > timeout_) return kNcclInProgress;
      std::this_thread::sleep_for(pause);
      if (pause < std::chrono::microseconds(1000)) pause *= 2;
      NcclResult state = kNcclSuccess;
      const NcclResult query = nccl_.comm_get_async_error(comm_, &state);
      result = query != kNcclSuccess ? query : state;
    }
    return result;
  }

  // Throws kDistributed unless the call, polled to its end, succeeded; a failure aborts the communicator.
  void settle(NcclResult result, const char* what) {
    result = poll(result);
    if (result == kNcclInProgress) fail(std::string(what) + late());
    if (result != kNcclSuccess) fail(std::string(what) + " failed: " + describe(result));
  }

  void release() {
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    if (computed_ != nullptr) cudaEventDestroy(computed_);
    if (summed_ != nullptr) cudaEventDestroy(summed_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  // Aborts the communicator (ncclCommAbort stops its kernels and frees it) and throws kDistributed.
  [[noreturn]] void fail(const std::string& message) {
    std::string text = "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ": NCCL: " + message;
    if (comm_ != nullptr) {
      nccl_.comm_abort(comm_);
      comm_ = nullptr;
    }
    throw Error(Error::Kind::kDistributed, text);
  }

  const NcclLibrary nccl_;
  CudaBackend& backend_;  // the model's; not touched once the model's steps are done (the destructor uses device_)
  int device_;
  int rank_;
  int size_;
  double timeout_;
  std::shared_ptr<Communicator> host_;
  NcclComm comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t computed_ = nullptr;
  cudaEvent_t summed_ = nullptr;
};

}  // namespace

std::shared_ptr<Communicator> create_nccl_communicator(const NcclLibrary& library, Backend& backend,
                                                       const NcclSetup& setup) {
  if (std::string(backend.name()) != "cuda") throw Error(Error::Kind::kBackend, "NCCL sums device memory only");
  if (setup.host == nullptr || !setup.broadcast) throw Error(Error::Kind::kState, "NCCL needs the MPI bridge");
  return std::make_shared<NcclCommunicator>(library, static_cast<CudaBackend&>(backend), setup);
}

}  // namespace cuda

std::shared_ptr<Communicator> create_nccl_communicator(Backend& backend, const NcclSetup& setup) {
  return cuda::create_nccl_communicator(cuda::nccl_library(), backend, setup);
}

std::string nccl_version() { return cuda::nccl_version_name(cuda::nccl_library().version); }

}  // namespace dnft
