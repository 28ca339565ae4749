// The part of NCCL's C API that cuda/nccl_communicator.cu calls, declared here so that the build needs no NCCL:
// the library is opened at run time (cuda/nccl_library.h). The types and values match the ABI of NCCL 2.x as
// shipped in libnccl.so.2 (the soname of every 2.x release); the oldest release accepted is 2.14, the first with
// ncclCommInitRankConfig and non-blocking communicators. Only what we call is here, nothing more.
#pragma once

#include <stddef.h>

// The CUDA runtime's stream handle, which NCCL takes as is.
typedef struct CUstream_st* cudaStream_t;

extern "C" {

// Return codes. In a non-blocking communicator a call may return kNcclInProgress: the operation continues in the
// background and ncclCommGetAsyncError reports its state.
typedef enum {
  kNcclSuccess = 0,
  kNcclUnhandledCudaError = 1,
  kNcclSystemError = 2,
  kNcclInternalError = 3,
  kNcclInvalidArgument = 4,
  kNcclInvalidUsage = 5,
  kNcclRemoteError = 6,
  kNcclInProgress = 7,
} NcclResult;

typedef enum { kNcclFloat32 = 7 } NcclDataType;
typedef enum { kNcclSum = 0 } NcclRedOp;

typedef struct NcclCommOpaque* NcclComm;

// The rendezvous token that rank 0 creates and every rank passes to ncclCommInitRankConfig: 128 opaque bytes.
typedef struct {
  char bytes[128];
} NcclUniqueId;

// The leading fields of ncclConfig_t. NCCL reads `size` bytes of it, checks `magic`, and gives every field that a
// config of this `version` (2.14) does not have, or that holds kNcclConfigUndefined, its default.
typedef struct {
  size_t size;
  unsigned int magic;
  unsigned int version;
  int blocking;
} NcclConfig;

enum : unsigned int { kNcclConfigMagic = 0xcafebeefu };
enum : int { kNcclConfigVersion = 21400, kNcclMinimumVersion = 21400 };

// Function types of the entry points, named as the library exports them.
typedef NcclResult (*NcclGetVersionFn)(int* version);
typedef NcclResult (*NcclGetUniqueIdFn)(NcclUniqueId* id);
typedef NcclResult (*NcclCommInitRankConfigFn)(NcclComm* comm, int nranks, NcclUniqueId id, int rank,
                                               NcclConfig* config);
typedef NcclResult (*NcclReduceFn)(const void* send, void* recv, size_t count, NcclDataType type, NcclRedOp op,
                                   int root, NcclComm comm, cudaStream_t stream);
typedef NcclResult (*NcclBroadcastFn)(const void* send, void* recv, size_t count, NcclDataType type, int root,
                                      NcclComm comm, cudaStream_t stream);
typedef NcclResult (*NcclCommGetAsyncErrorFn)(NcclComm comm, NcclResult* state);
typedef NcclResult (*NcclCommFinalizeFn)(NcclComm comm);
typedef NcclResult (*NcclCommDestroyFn)(NcclComm comm);
typedef NcclResult (*NcclCommAbortFn)(NcclComm comm);
typedef const char* (*NcclGetErrorStringFn)(NcclResult result);
typedef const char* (*NcclGetLastErrorFn)(NcclComm comm);

}  // extern "C"
