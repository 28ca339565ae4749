// A simulated libnccl.so.2 for the simulated GPU (docs/gpu.md, "NCCL on the simulator"): the entry points of
// cuda/nccl_api.h, whose collectives are carried over MPI. Test-only, built in DNFT_CUDA=SIM builds and selected with
// DNFT_NCCL_LIBRARY.
//
// Stream order: a collective is queued on the stream it is given as a host function (cudaLaunchHostFunc of the
// simulator's runtime, which the addon shares), so it reads its input after the work queued before it and the work
// queued after it sees its result, as an NCCL kernel would. Simulated device memory is host memory, so MPI reads and
// writes it directly. A communicator of one rank needs no MPI (test_nccl runs without a launcher); one of several
// ranks duplicates MPI_COMM_WORLD, so its messages never meet those of libdnft_mpi.so, and needs
// MPI_THREAD_MULTIPLE: its collectives run on the stream's thread while the addon calls MPI from others.
//
// Each collective is nonblocking MPI polled on that thread; ncclCommAbort makes the poll give up, as a real abort
// stops NCCL's kernels, so that a rank left waiting for a dead peer does not hold its stream forever.
#include <cuda_runtime.h>
#include <mpi.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "cuda/nccl_api.h"

namespace {

constexpr int kVersion = 21400;  // the ABI cuda/nccl_api.h declares
constexpr char kIdTag[] = "dnft-sim-nccl";

// One communicator. Shared with the collectives queued on streams, which may run after ncclCommAbort or
// ncclCommDestroy released the handle.
struct Comm {
  int rank = 0;
  int size = 1;
  MPI_Comm mpi = MPI_COMM_NULL;
  std::atomic<int> queued{0};  // collectives queued and not yet finished
  std::atomic<bool> aborted{false};
  std::atomic<bool> finalizing{false};
  std::mutex mutex;  // guards error and last_error
  NcclResult error = kNcclSuccess;
  std::string last_error;

  void fail(NcclResult code, const std::string& message) {
    std::lock_guard<std::mutex> lock(mutex);
    if (error == kNcclSuccess) {
      error = code;
      last_error = message;
    }
  }

  ~Comm() {
    int finalized = 1;
    MPI_Finalized(&finalized);
    if (mpi != MPI_COMM_NULL && !finalized) MPI_Comm_free(&mpi);
  }
};

// A handle owns a reference to its communicator; ncclCommDestroy and ncclCommAbort delete the handle.
struct Handle {
  std::shared_ptr<Comm> comm;
};

Comm* comm_of(NcclComm handle) { return reinterpret_cast<Handle*>(handle)->comm.get(); }

std::string mpi_error(const char* what, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(what) + " failed: " + std::string(text, static_cast<size_t>(length));
}

// Polls a started MPI collective until it completes or the communicator is aborted (its request then left behind:
// MPI cannot cancel a collective).
bool wait(Comm& comm, MPI_Request* request, const char* what) {
  for (;;) {
    int done = 0;
    const int code = MPI_Test(request, &done, MPI_STATUS_IGNORE);
    if (code != MPI_SUCCESS) {
      comm.fail(kNcclSystemError, mpi_error(what, code));
      return false;
    }
    if (done) return true;
    if (comm.aborted.load()) return false;
    std::this_thread::yield();
  }
}

// A collective queued on a stream.
struct Collective {
  enum class Kind { kReduce, kBroadcast } kind;
  const float* send;
  float* recv;
  size_t count;
  int root;
  std::shared_ptr<Comm> comm;

  void run() {
    Comm& c = *comm;
    const bool root_here = c.rank == root;
    // A root whose output is another buffer starts from its input (a broadcast sends it; a reduce adds to it).
    if (root_here && send != recv) std::memcpy(recv, send, count * sizeof(float));
    if (c.size == 1) return;
    const size_t kChunk = size_t{1} << 30;  // MPI counts are ints
    for (size_t at = 0; at < count && !c.aborted.load(); at += kChunk) {
      const int n = static_cast<int>(count - at < kChunk ? count - at : kChunk);
      MPI_Request request;
      int code;
      if (kind == Kind::kReduce) {
        const void* input = root_here ? MPI_IN_PLACE : static_cast<const void*>(send + at);
        code = MPI_Ireduce(input, recv + at, n, MPI_FLOAT, MPI_SUM, root, c.mpi, &request);
      } else {
        code = MPI_Ibcast(recv + at, n, MPI_FLOAT, root, c.mpi, &request);
      }
      const char* what = kind == Kind::kReduce ? "MPI_Ireduce" : "MPI_Ibcast";
      if (code != MPI_SUCCESS) return c.fail(kNcclSystemError, mpi_error(what, code));
      if (!wait(c, &request, what)) return;
    }
  }

  static void on_stream(void* arg) {
    std::unique_ptr<Collective> self(static_cast<Collective*>(arg));
    if (!self->comm->aborted.load()) self->run();
    self->comm->queued.fetch_sub(1);
  }
};

NcclResult invalid(Comm* comm, NcclResult code, const std::string& message) {
  if (comm != nullptr) {
    std::lock_guard<std::mutex> lock(comm->mutex);
    comm->last_error = message;
  }
  return code;
}

NcclResult enqueue(Collective::Kind kind, const void* send, void* recv, size_t count, NcclDataType type, int root,
                   NcclComm handle, cudaStream_t stream) {
  if (handle == nullptr) return kNcclInvalidArgument;
  const std::shared_ptr<Comm>& comm = reinterpret_cast<Handle*>(handle)->comm;
  if (type != kNcclFloat32) return invalid(comm.get(), kNcclInvalidArgument, "only float32 is simulated");
  if (root < 0 || root >= comm->size) return invalid(comm.get(), kNcclInvalidArgument, "root out of range");
  if (recv == nullptr || (send == nullptr && count > 0)) {
    return invalid(comm.get(), kNcclInvalidArgument, "a null buffer");
  }
  if (comm->aborted.load()) return invalid(comm.get(), kNcclInvalidUsage, "the communicator was aborted");
  auto* op = new Collective{kind, static_cast<const float*>(send), static_cast<float*>(recv), count, root, comm};
  comm->queued.fetch_add(1);
  const cudaError_t launched = cudaLaunchHostFunc(stream, &Collective::on_stream, op);
  if (launched != cudaSuccess) {
    comm->queued.fetch_sub(1);
    delete op;
    return invalid(comm.get(), kNcclUnhandledCudaError,
                   std::string("cudaLaunchHostFunc: ") + cudaGetErrorString(launched));
  }
  return kNcclSuccess;
}

}  // namespace

extern "C" {

NcclResult ncclGetVersion(int* version) {
  if (version == nullptr) return kNcclInvalidArgument;
  *version = kVersion;
  return kNcclSuccess;
}

// A tag and a random nonce: ranks given different tokens (one not broadcast from rank 0) are told apart at set-up.
NcclResult ncclGetUniqueId(NcclUniqueId* id) {
  if (id == nullptr) return kNcclInvalidArgument;
  std::memset(id->bytes, 0, sizeof id->bytes);
  std::memcpy(id->bytes, kIdTag, sizeof kIdTag);
  std::random_device entropy;
  for (size_t i = sizeof kIdTag; i < sizeof kIdTag + 16; ++i) id->bytes[i] = static_cast<char>(entropy());
  return kNcclSuccess;
}

// Completes at once (a non-blocking communicator may also finish its set-up before returning).
NcclResult ncclCommInitRankConfig(NcclComm* out, int nranks, NcclUniqueId id, int rank, NcclConfig* config) {
  if (out == nullptr || nranks < 1 || rank < 0 || rank >= nranks) return kNcclInvalidArgument;
  *out = nullptr;
  if (config != nullptr && (config->magic != kNcclConfigMagic || config->size < sizeof(NcclConfig))) {
    return kNcclInvalidArgument;
  }
  if (std::memcmp(id.bytes, kIdTag, sizeof kIdTag) != 0) return kNcclInvalidArgument;
  auto comm = std::make_shared<Comm>();
  comm->rank = rank;
  comm->size = nranks;
  if (nranks > 1) {
    int initialized = 0, provided = 0, world_rank = -1, world_size = 0;
    MPI_Initialized(&initialized);
    if (!initialized) return kNcclInvalidUsage;  // the MPI bridge initialises MPI before any communicator
    MPI_Query_thread(&provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    if (provided < MPI_THREAD_MULTIPLE || world_rank != rank || world_size != nranks) return kNcclInvalidUsage;
    if (MPI_Comm_dup(MPI_COMM_WORLD, &comm->mpi) != MPI_SUCCESS) return kNcclSystemError;
    MPI_Comm_set_errhandler(comm->mpi, MPI_ERRORS_RETURN);
    // Every rank must hold rank 0's token.
    NcclUniqueId root = id;
    if (MPI_Bcast(root.bytes, sizeof root.bytes, MPI_BYTE, 0, comm->mpi) != MPI_SUCCESS) return kNcclSystemError;
    if (std::memcmp(root.bytes, id.bytes, sizeof id.bytes) != 0) return kNcclInvalidUsage;
  }
  *out = reinterpret_cast<NcclComm>(new Handle{std::move(comm)});
  return kNcclSuccess;
}

NcclResult ncclReduce(const void* send, void* recv, size_t count, NcclDataType type, NcclRedOp op, int root,
                      NcclComm comm, cudaStream_t stream) {
  if (op != kNcclSum) return invalid(comm != nullptr ? comm_of(comm) : nullptr, kNcclInvalidArgument, "only sums");
  return enqueue(Collective::Kind::kReduce, send, recv, count, type, root, comm, stream);
}

NcclResult ncclBroadcast(const void* send, void* recv, size_t count, NcclDataType type, int root, NcclComm comm,
                         cudaStream_t stream) {
  return enqueue(Collective::Kind::kBroadcast, send, recv, count, type, root, comm, stream);
}

// The first failure of a collective, else kNcclInProgress while collectives are queued after ncclCommFinalize.
NcclResult ncclCommGetAsyncError(NcclComm handle, NcclResult* state) {
  if (handle == nullptr || state == nullptr) return kNcclInvalidArgument;
  Comm* comm = comm_of(handle);
  std::lock_guard<std::mutex> lock(comm->mutex);
  *state = comm->error != kNcclSuccess                          ? comm->error
           : comm->finalizing.load() && comm->queued.load() > 0 ? kNcclInProgress
                                                                : kNcclSuccess;
  return kNcclSuccess;
}

// Non-blocking: in progress until the collectives queued before it have run.
NcclResult ncclCommFinalize(NcclComm handle) {
  if (handle == nullptr) return kNcclInvalidArgument;
  Comm* comm = comm_of(handle);
  comm->finalizing.store(true);
  return comm->queued.load() > 0 ? kNcclInProgress : kNcclSuccess;
}

NcclResult ncclCommDestroy(NcclComm handle) {
  if (handle == nullptr) return kNcclInvalidArgument;
  delete reinterpret_cast<Handle*>(handle);
  return kNcclSuccess;
}

NcclResult ncclCommAbort(NcclComm handle) {
  if (handle == nullptr) return kNcclSuccess;
  comm_of(handle)->aborted.store(true);
  delete reinterpret_cast<Handle*>(handle);
  return kNcclSuccess;
}

const char* ncclGetErrorString(NcclResult result) {
  switch (result) {
    case kNcclSuccess:
      return "no error";
    case kNcclUnhandledCudaError:
      return "unhandled cuda error (simulated NCCL)";
    case kNcclSystemError:
      return "unhandled system error (simulated NCCL over MPI)";
    case kNcclInternalError:
      return "internal error (simulated NCCL)";
    case kNcclInvalidArgument:
      return "invalid argument (simulated NCCL)";
    case kNcclInvalidUsage:
      return "invalid usage (simulated NCCL: one rank per MPI process, MPI_THREAD_MULTIPLE, rank 0's token)";
    case kNcclRemoteError:
      return "remote process exited or there was a network error (simulated NCCL)";
    case kNcclInProgress:
      return "NCCL operation in progress";
  }
  return "unknown result code (simulated NCCL)";
}

// Valid until the next call on the communicator.
const char* ncclGetLastError(NcclComm handle) {
  if (handle == nullptr) return "";
  Comm* comm = comm_of(handle);
  thread_local std::string copy;
  std::lock_guard<std::mutex> lock(comm->mutex);
  copy = comm->last_error;
  return copy.c_str();
}

}  // extern "C"
