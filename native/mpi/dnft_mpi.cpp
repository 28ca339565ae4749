// libdnft_mpi.so (dnft_mpi.h): the few MPI collectives the trainers need. Each is MPI's own blocking call, made on
// the calling thread, so it progresses and waits exactly as the MPI library does for any program; a watchdog thread
// ends the job when one does not complete within the timeout.
//
// An earlier version started nonblocking collectives and polled them (MPI_Test) so that the poll could time out.
// Polled without sleeping, ranks that share cores with other work starve each other: a 2-rank toy2d step went from
// 10 ms to 1.2 s beside two busy processes, while a blocking MPI_Allreduce of the same size went to 20-37 ms. Polled
// with sleeps, the transfer itself crawls (Open MPI advances a nonblocking collective only inside MPI calls: a 47 MB
// sum ran 20x slower). A blocking call has neither problem, and the timeout needs no poll: the watchdog sleeps until
// the deadline of the collective in progress.
#include "dnft_mpi.h"

#include <mpi.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

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

// Waits until the reader of `fd` has taken every byte written to it, or until `limit` passes: a pipe's unread bytes
// (FIONREAD, which Linux answers on either end) or a socket's unsent ones (TIOCOUTQ). A file or terminal has no reader
// to wait for, and a pipe or socket whose reader is gone (POLLERR, POLLHUP) never drains.
void wait_until_read(int fd, Clock::duration limit) {
  struct stat status;
  if (fstat(fd, &status) != 0) return;
  const unsigned long request = S_ISFIFO(status.st_mode) ? FIONREAD : S_ISSOCK(status.st_mode) ? TIOCOUTQ : 0;
  if (request == 0) return;
  const Clock::time_point deadline = Clock::now() + limit;
  for (;;) {
    int unread = 0;
    pollfd peer{fd, 0, 0};
    if (ioctl(fd, request, &unread) != 0 || unread == 0) return;
    if (poll(&peer, 1, 0) < 0 || (peer.revents & (POLLERR | POLLHUP)) != 0 || Clock::now() >= deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// MPI_Abort once the launcher has read this rank's stderr. The launcher forwards it through a pipe, and an abort that
// reaches the launcher first can end the job with the message above still unread: Hydra lost rank 1's error in about
// 1 launch in 20 under load, and Open MPI in 1 of 24 under CI's load even after a fixed half-second pause. The pause
// after the read covers the launcher's own hop (Hydra's proxy forwards what it read to mpiexec).
[[noreturn]] void abort_job(int code) {
  std::fflush(stderr);
  wait_until_read(STDERR_FILENO, std::chrono::seconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return
}

// The watchdog of the collectives: a thread that sleeps until the deadline of the collective in progress (or for a
// whole timeout while none is) and aborts the job if that collective is still the one in progress then. A collective
// marks its start and end with two atomic stores, so the watchdog is never woken per collective. It calls MPI_Abort
// while this rank's MPI call is still blocked on another thread, which MPI_THREAD_MULTIPLE (asked for at init)
// allows. Its state is never destroyed: the thread is detached and lives until the process ends.
class Watchdog {
 public:
  explicit Watchdog(double timeout)
      : timeout_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout))) {
    std::thread([this] { watch(); }).detach();
  }

  void begin(const char* what) {
    what_.store(what);
    started_.store(Clock::now().time_since_epoch().count());
  }
  void end() { started_.store(0); }

 private:
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      const Clock::rep started = started_.load();
      const Clock::time_point now = Clock::now();
      const Clock::time_point deadline =
          started == 0 ? now + timeout_ : Clock::time_point(Clock::duration(started)) + timeout_;
      if (started != 0 && now >= deadline) {
        std::fprintf(stderr,
                     "diffusion-nft: rank %d of %d: %s did not complete within %g s (a rank died, hangs or is far "
                     "behind); aborting the job\n",
                     g_rank, g_size, what_.load(), g_timeout);
        abort_job(3);
      }
      wake_.wait_until(lock, deadline);
    }
  }

  const Clock::duration timeout_;
  std::atomic<Clock::rep> started_{0};  // when the collective in progress began (0: none)
  std::atomic<const char*> what_{""};
  std::mutex mutex_;
  std::condition_variable wake_;  // never notified: the watchdog wakes at its deadlines only
};

Watchdog* g_watchdog = nullptr;  // made by dnft_mpi_init when the timeout is not 0

// Runs one blocking collective under the watchdog; its MPI error becomes the message in `error`.
template <typename Call>
int collective(const char* what, char* error, size_t size, Call&& call) {
  if (g_watchdog != nullptr) g_watchdog->begin(what);
  const int code = call();
  if (g_watchdog != nullptr) g_watchdog->end();
  return code == MPI_SUCCESS ? 0 : mpi_fail(error, size, what, code);
}

template <typename T>
int sum(T* data, size_t count, MPI_Datatype type, const char* what, char* error, size_t size) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const size_t kChunk = size_t{1} << 30;
  for (size_t at = 0; at < count; at += kChunk) {
    const int n = static_cast<int>(count - at < kChunk ? count - at : kChunk);
    // Every rank must receive the very same bits, so that θ stays identical. With two ranks each element is one
    // addition of the same two numbers, which IEEE 754 makes commutative: MPI_Allreduce gives both the same bits
    // whatever its algorithm, in one collective where reduce and broadcast take two (each a wait on the peer, which
    // is what a busy machine makes expensive). With more ranks the order of the additions may differ between ranks:
    // reduce on rank 0, then broadcast its bits.
    if (g_size == 2) {
      if (collective(what, error, size,
                     [&] { return MPI_Allreduce(MPI_IN_PLACE, data + at, n, type, MPI_SUM, MPI_COMM_WORLD); }))
        return 1;
      continue;
    }
    void* send = g_rank == 0 ? MPI_IN_PLACE : data + at;
    if (collective(what, error, size, [&] { return MPI_Reduce(send, data + at, n, type, MPI_SUM, 0, MPI_COMM_WORLD); }))
      return 1;
    if (collective(what, error, size, [&] { return MPI_Bcast(data + at, n, type, 0, MPI_COMM_WORLD); })) return 1;
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
  int provided = 0;
  if (!initialized) {
    const int code = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (code != MPI_SUCCESS) return mpi_fail(error, size, "MPI_Init_thread", code);
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_SERIALIZED) return fail(error, size, "MPI provides no MPI_THREAD_SERIALIZED support");
  if (provided < MPI_THREAD_MULTIPLE && timeout_seconds > 0) {
    return fail(error, size,
                "MPI provides no MPI_THREAD_MULTIPLE support, which the collective timeout's watchdog needs "
                "(distributed.timeout 0 turns the timeout off)");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  g_timeout = timeout_seconds;
  if (g_timeout > 0 && g_watchdog == nullptr) g_watchdog = new Watchdog(g_timeout);
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
  const int n = static_cast<int>(bytes);
  return collective("an all-gather", error, size,
                    [&] { return MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, MPI_COMM_WORLD); });
}

int dnft_mpi_bcast(void* data, size_t bytes, int root, char* error, size_t size) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (bytes > INT_MAX) return fail(error, size, "a broadcast of more than 2 GiB");
  return collective("a broadcast", error, size,
                    [&] { return MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD); });
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
