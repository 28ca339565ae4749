// A stand-in for libnccl.so.2 that test_nccl loads through cuda/nccl_library.h: the entry points the loader
// resolves, with behaviour the test chooses (fake_nccl_set_mode), to drive the communicator's failure paths without
// a second GPU. CMake builds it three times: complete, without ncclCommAbort, and claiming NCCL 2.13.
#include <cstdio>

#include "cuda/nccl_api.h"

#ifndef FAKE_NCCL_VERSION
#define FAKE_NCCL_VERSION 22105
#endif

namespace {

// 0: every call succeeds at once; 1: every call stays in progress forever; 2: collectives fail with kNcclRemoteError
// once polled.
int g_mode = 0;
int g_aborts = 0;
NcclResult g_state = kNcclSuccess;
int g_comm_storage = 0;

NcclResult start() {
  if (g_mode == 0) return g_state = kNcclSuccess;
  g_state = g_mode == 1 ? kNcclInProgress : kNcclRemoteError;
  return kNcclInProgress;
}

}  // namespace

extern "C" {

void fake_nccl_set_mode(int mode) {
  g_mode = mode;
  g_aborts = 0;
  g_state = kNcclSuccess;
}
int fake_nccl_aborts(void) { return g_aborts; }

NcclResult ncclGetVersion(int* version) {
  *version = FAKE_NCCL_VERSION;
  return kNcclSuccess;
}
NcclResult ncclGetUniqueId(NcclUniqueId* id) {
  for (int i = 0; i < 128; ++i) id->bytes[i] = static_cast<char>(i);
  return kNcclSuccess;
}
NcclResult ncclCommInitRankConfig(NcclComm* comm, int, NcclUniqueId, int, NcclConfig* config) {
  if (config->magic != kNcclConfigMagic || config->size != sizeof(NcclConfig) || config->blocking != 0) {
    return kNcclInvalidArgument;
  }
  *comm = reinterpret_cast<NcclComm>(&g_comm_storage);
  return g_mode == 1 ? start() : (g_state = kNcclSuccess);
}
NcclResult ncclReduce(const void*, void*, size_t, NcclDataType, NcclRedOp, int, NcclComm, cudaStream_t) {
  return start();
}
NcclResult ncclBroadcast(const void*, void*, size_t, NcclDataType, int, NcclComm, cudaStream_t) { return start(); }
NcclResult ncclCommGetAsyncError(NcclComm, NcclResult* state) {
  *state = g_state;
  return kNcclSuccess;
}
NcclResult ncclCommFinalize(NcclComm) { return kNcclSuccess; }
NcclResult ncclCommDestroy(NcclComm) { return kNcclSuccess; }
#ifndef FAKE_NCCL_WITHOUT_ABORT
NcclResult ncclCommAbort(NcclComm) {
  ++g_aborts;
  return kNcclSuccess;
}
#endif
const char* ncclGetErrorString(NcclResult result) {
  static char text[64];
  std::snprintf(text, sizeof text, "fake NCCL error %d", static_cast<int>(result));
  return text;
}
const char* ncclGetLastError(NcclComm) { return ""; }

}  // extern "C"
