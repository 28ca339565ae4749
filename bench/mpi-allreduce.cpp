// mpi-allreduce COUNT ITERATIONS: the milliseconds of one plain blocking MPI_Allreduce of COUNT floats (sum),
// averaged over ITERATIONS after a warm-up; rank 0 prints {"ms": ...}. The baseline that `npm run bench --
// distributed` (bench/distributed.ts, which compiles it with mpicxx) holds the trainers' steps against.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc != 3) {
    std::fprintf(stderr, "usage: mpi-allreduce COUNT ITERATIONS\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int count = std::atoi(argv[1]);
  const int iterations = std::atoi(argv[2]);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::vector<float> data(static_cast<size_t>(count), 1.0f);
  const auto run = [&] { MPI_Allreduce(MPI_IN_PLACE, data.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); };
  for (int i = 0; i < 3; i++) run();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; i++) run();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (rank == 0) std::printf("{\"ms\":%.4f}\n", ms / iterations);
  MPI_Finalize();
  return 0;
}
