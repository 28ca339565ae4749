// The addon's side of data parallelism (docs/distributed.md): libdnft_mpi.so (native/mpi/dnft_mpi.h) opened with
// dlopen on request, the JS functions over it, and the Communicators the models' steps call (MPI's, and NCCL's for
// a model on the GPU, whose rendezvous goes over MPI).
#pragma once

#include <napi.h>

#include <memory>

#include "core/backend.h"
#include "core/communicator.h"

namespace dnft::addon {

// Adds mpiOpen, mpiAllgather, mpiSum, mpiBcast, mpiAbort, mpiFinalize and ncclVersion to the exports.
void define_mpi(Napi::Env env, Napi::Object exports);

// The communicator of a model on the CPU (host memory) or on a device (staged through the host); throws kState when
// mpiOpen has not run.
std::shared_ptr<Communicator> mpi_communicator(bool host_memory);

// The communicator of a model on the GPU over NCCL (core/device.h), its rendezvous over MPI and its statistics summed
// by MPI; collective: every rank calls it at once. Throws kState when mpiOpen has not run.
std::shared_ptr<Communicator> nccl_communicator(Backend& backend);

}  // namespace dnft::addon
