// libnccl.so.2 opened at run time (docs/distributed.md): the prebuilt addon never links NCCL and loads without it.
// The library is $DNFT_NCCL_LIBRARY when set (e.g. the copy pip's nvidia-nccl wheel installs under
// site-packages/nvidia/nccl/lib), else libnccl.so.2 on the loader's search path. Plain C++: no CUDA header here.
#pragma once

#include <memory>
#include <string>

#include "core/device.h"
#include "cuda/nccl_api.h"

namespace dnft::cuda {

// The entry points of one opened NCCL.
struct NcclLibrary {
  std::string path;
  int version = 0;  // ncclGetVersion's code, e.g. 22105 for 2.21.5
  NcclGetUniqueIdFn get_unique_id = nullptr;
  NcclCommInitRankConfigFn comm_init_rank_config = nullptr;
  NcclReduceFn reduce = nullptr;
  NcclBroadcastFn broadcast = nullptr;
  NcclCommGetAsyncErrorFn comm_get_async_error = nullptr;
  NcclCommFinalizeFn comm_finalize = nullptr;
  NcclCommDestroyFn comm_destroy = nullptr;
  NcclCommAbortFn comm_abort = nullptr;
  NcclGetErrorStringFn get_error_string = nullptr;
  NcclGetLastErrorFn get_last_error = nullptr;
};

// Opens `path` (a file name or a path, as dlopen takes it) and resolves every entry point. Throws kBackend naming the
// library and the fix when it cannot be opened, lacks an entry point, or is older than NCCL 2.14. The library stays
// open for the life of the process.
NcclLibrary load_nccl_library(const std::string& path);

// The file the process's NCCL is opened from: $DNFT_NCCL_LIBRARY, else libnccl.so.2.
std::string nccl_library_path();

// The process's NCCL (nccl_library_path()), opened on first use; a failure is not remembered, so a later call tries
// again.
const NcclLibrary& nccl_library();

// "2.21.5" for the code 22105 (and "2.8.4" for the codes before 2.9, 2804).
std::string nccl_version_name(int version);

// create_nccl_communicator (core/device.h) over a given library rather than the process's: the tests' fakes.
std::shared_ptr<Communicator> create_nccl_communicator(const NcclLibrary& library, Backend& backend,
                                                       const NcclSetup& setup);

}  // namespace dnft::cuda
