// The C ABI of libdnft_mpi.so, the optional library that `npm run build:mpi` builds against the local MPI
// (docs/distributed.md). The addon dlopens it, so the prebuilt addon never links MPI, and MPI's own types (whose ABI
// differs between Open MPI and MPICH) never cross this boundary. Every call returns 0, or else non-zero with a
// message in `error`. A collective that does not complete within the timeout given to dnft_mpi_init aborts the job
// (MPI_Abort) with a message naming this rank: a rank that died or hangs never leaves the others waiting.
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DNFT_MPI_ABI_VERSION 1

int dnft_mpi_abi_version(void);
// MPI_Init_thread (MPI_THREAD_MULTIPLE) unless MPI is initialised already; collectives time out after
// `timeout_seconds` (0: never).
int dnft_mpi_init(double timeout_seconds, char* error, size_t error_size);
int dnft_mpi_rank(void);
int dnft_mpi_size(void);
// data ← the sum over the ranks, bit-identical on every rank (reduced on rank 0, then broadcast).
int dnft_mpi_sum_f32(float* data, size_t count, char* error, size_t error_size);
int dnft_mpi_sum_f64(double* data, size_t count, char* error, size_t error_size);
// recv (size × bytes) ← every rank's `bytes` bytes of send, in rank order.
int dnft_mpi_allgather(const void* send, size_t bytes, void* recv, char* error, size_t error_size);
int dnft_mpi_bcast(void* data, size_t bytes, int root, char* error, size_t error_size);
// Ends every rank of the job (MPI_Abort), after printing the message on stderr and pausing for the launcher to
// forward it.
void dnft_mpi_abort(const char* message, int code);
int dnft_mpi_finalize(void);

#ifdef __cplusplus
}
#endif
