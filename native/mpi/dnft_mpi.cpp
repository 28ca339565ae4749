// libdnft_mpi.so (dnft_mpi.h): the few MPI collectives the trainers need, each nonblocking and polled so that it
// can time out.
#include "dnft_mpi.h"

#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

namespace {

double g_timeout = 0;
int g_rank = 0, g_size = 1;
std::mutex g_mutex;  // the lib's calls come from the JS thread and the addon's workers, never at once

int fail(char* error, size_t size, const std::string& message) {
  if (error != nullptr && size > 0) std::snprintf(error, size, "rank %d: %s", g_rank, message.c_str());
  return 1;
}

int mpi_fail(char* error, size_t size, const char* what, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return fail(error, size, std::string(what) + " failed: " + std::string(text, length));
}

// MPI_Abort after a pause: the launcher forwards a rank's stderr through a pipe, and an abort that reaches it first
// can end the job with the message above still unread (seen with MPICH's Hydra under load: rank 1's error lost in
// about 1 launch in 20).
[[noreturn]] void abort_job(int code) {
  std::fflush(stderr);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return
}

// Polls a started collective until it completes; past the timeout the whole job is aborted. It polls without sleeping,
// as MPI's own blocking waits do: a nonblocking collective advances only inside MPI calls (Open MPI's shared-memory
// transport moves a large message a fragment per call), and polls backed off to 0.5 ms made a 47 MB sum 20× slower.
int wait(MPI_Request* request, const char* what, char* error, size_t size) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int done = 0;
    const int code = MPI_Test(request, &done, MPI_STATUS_IGNORE);
    if (code != MPI_SUCCESS) return mpi_fail(error, size, what, code);
    if (done) return 0;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (g_timeout > 0 && waited > g_timeout) {
      std::fprintf(stderr,
                   "diffusion-nft: rank %d of %d: %s did not complete within %g s (a rank died, hangs or is far "
                   "behind); aborting the job\n",
                   g_rank, g_size, what, g_timeout);
      abort_job(3);
    }
    std::this_thread::yield();  // to a thread of this core's that has work, on an oversubscribed host
  }
}

template <typename T>
int sum(T* data, size_t count, MPI_Datatype type, const char* what, char* error, size_t size) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const size_t kChunk = size_t{1} << 30;
  for (size_t at = 0; at < count; at += kChunk) {
    const int n = static_cast<int>(count - at < kChunk ? count - at : kChunk);
    MPI_Request request;
    // Reduce then broadcast (not MPI_Iallreduce): every rank receives the very same bits, so θ stays identical.
    void* send = g_rank == 0 ? MPI_IN_PLACE : data + at;
    int code = MPI_Ireduce(send, data + at, n, type, MPI_SUM, 0, MPI_COMM_WORLD, &request);
    if (code != MPI_SUCCESS) return mpi_fail(error, size, what, code);
    if (wait(&request, what, error, size) != 0) return 1;
    code = MPI_Ibcast(data + at, n, type, 0, MPI_COMM_WORLD, &request);
    if (code != MPI_SUCCESS) return mpi_fail(error, size, what, code);
    if (wait(&request, what, error, size) != 0) return 1;
  }
  return 0;
}

}  // namespace

extern "C" {

int dnft_mpi_abi_version(void) { return DNFT_MPI_ABI_VERSION; }

int dnft_mpi_init(double timeout_seconds, char* error, size_t size) {
  std::lock_guard<std::mutex> lock(g_mutex);
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    const int code = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (code != MPI_SUCCESS) return mpi_fail(error, size, "MPI_Init_thread", code);
    if (provided < MPI_THREAD_SERIALIZED) return fail(error, size, "MPI provides no MPI_THREAD_SERIALIZED support");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  g_timeout = timeout_seconds;
  return 0;
}

int dnft_mpi_rank(void) { return g_rank; }
int dnft_mpi_size(void) { return g_size; }

int dnft_mpi_sum_f32(float* data, size_t count, char* error, size_t size) {
  return sum(data, count, MPI_FLOAT, "the sum of the gradients", error, size);
}

int dnft_mpi_sum_f64(double* data, size_t count, char* error, size_t size) {
  return sum(data, count, MPI_DOUBLE, "a sum of statistics", error, size);
}

int dnft_mpi_allgather(const void* send, size_t bytes, void* recv, char* error, size_t size) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (bytes > INT_MAX) return fail(error, size, "an all-gather of more than 2 GiB per rank");
  MPI_Request request;
  const int n = static_cast<int>(bytes);
  const int code = MPI_Iallgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, MPI_COMM_WORLD, &request);
  if (code != MPI_SUCCESS) return mpi_fail(error, size, "MPI_Iallgather", code);
  return wait(&request, "an all-gather", error, size);
}

int dnft_mpi_bcast(void* data, size_t bytes, int root, char* error, size_t size) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (bytes > INT_MAX) return fail(error, size, "a broadcast of more than 2 GiB");
  MPI_Request request;
  const int code = MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD, &request);
  if (code != MPI_SUCCESS) return mpi_fail(error, size, "MPI_Ibcast", code);
  return wait(&request, "a broadcast", error, size);
}

void dnft_mpi_abort(const char* message, int code) {
  std::fprintf(stderr, "diffusion-nft: rank %d of %d: %s\n", g_rank, g_size, message);
  abort_job(code);
}

int dnft_mpi_finalize(void) {
  std::lock_guard<std::mutex> lock(g_mutex);
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized ? 0 : MPI_Finalize();
}

}  // extern "C"
