// mpi-allreduce COUNT ITERATIONS [COMPUTE_MS]: the milliseconds of one iteration, averaged over ITERATIONS after a
// warm-up; rank 0 prints {"ms": ...}. An iteration is a plain blocking MPI_Allreduce (sum) of COUNT floats; with
// COMPUTE_MS it is a plain-MPI model of a data-parallel step instead: COMPUTE_MS of this thread's CPU time spent on
// arithmetic, then the two blocking sums a trainer's step makes (10 floats of statistics, then COUNT floats of
// gradient). The baselines that `npm run bench -- distributed` (bench/distributed.ts, which compiles this with
// mpicxx) holds the trainers' steps against.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace {

double threadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

// Arithmetic until this thread has run for `ms` of CPU time: the time stretches, as a real step's compute does, when
// other processes take the core. Returns the result so that the loop is not optimised away.
float compute(double ms) {
  const double until = threadCpuMs() + ms;
  float acc = 1.0f;
  while (threadCpuMs() < until) {
    for (int i = 0; i < 4096; i++) acc = acc * 0.999999f + 1e-7f;
  }
  return acc;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: mpi-allreduce COUNT ITERATIONS [COMPUTE_MS]\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int count = std::atoi(argv[1]);
  const int iterations = std::atoi(argv[2]);
  const double computeMs = argc == 4 ? std::atof(argv[3]) : -1.0;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::vector<float> data(static_cast<size_t>(count), 1.0f);
  std::vector<float> statistics(10, 1.0f);
  volatile float sink = 0.0f;
  const auto run = [&] {
    if (computeMs >= 0) {
      sink = sink + compute(computeMs);
      MPI_Allreduce(MPI_IN_PLACE, statistics.data(), 10, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    MPI_Allreduce(MPI_IN_PLACE, data.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  };
  for (int i = 0; i < 3; i++) run();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; i++) run();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (rank == 0) std::printf("{\"ms\":%.4f}\n", ms / iterations);
  MPI_Finalize();
  return 0;
}
