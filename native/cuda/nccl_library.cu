// The NCCL loader (cuda/nccl_library.h). Built only into CUDA builds (linux-x64), never into the linux-arm64
// prebuild, so the dl functions need none of the symbol-version pinning of addon/mpi.cpp.
#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <mutex>

#include "core/common.h"
#include "cuda/nccl_library.h"

namespace dnft::cuda {

namespace {

constexpr const char* kDefaultName = "libnccl.so.2";
constexpr const char* kFix =
    "install NCCL 2.14 or newer (e.g. `pip install nvidia-nccl-cu12`, or your distribution's libnccl2) and put "
    "libnccl.so.2 on the loader's path (LD_LIBRARY_PATH), or name the file in DNFT_NCCL_LIBRARY";

template <typename F>
F resolve(void* handle, const char* name, const std::string& path) {
  void* address = dlsym(handle, name);
  if (address == nullptr) {
    throw Error(Error::Kind::kBackend, path + " has no " + name + ": it is not NCCL 2.14 or newer; " + kFix);
  }
  return reinterpret_cast<F>(address);
}

}  // namespace

std::string nccl_version_name(int version) {
  const bool coded_by_10000 = version >= 10000;  // NCCL 2.9 on: major·10000 + minor·100 + patch
  const int major = coded_by_10000 ? version / 10000 : version / 1000;
  const int minor = coded_by_10000 ? version % 10000 / 100 : version % 1000 / 100;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(version % 100);
}

NcclLibrary load_nccl_library(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* reason = dlerror();
    throw Error(Error::Kind::kBackend,
                "cannot load NCCL (" + path + "): " + (reason != nullptr ? reason : "unknown error") + "; " + kFix);
  }
  try {
    NcclLibrary lib;
    lib.path = path;
    auto get_version = resolve<NcclGetVersionFn>(handle, "ncclGetVersion", path);
    if (get_version(&lib.version) != kNcclSuccess || lib.version < kNcclMinimumVersion) {
      throw Error(Error::Kind::kBackend, path + " is NCCL " + nccl_version_name(lib.version) +
                                             ", older than the 2.14 this package needs; " + kFix);
    }
    lib.get_unique_id = resolve<NcclGetUniqueIdFn>(handle, "ncclGetUniqueId", path);
    lib.comm_init_rank_config = resolve<NcclCommInitRankConfigFn>(handle, "ncclCommInitRankConfig", path);
    lib.reduce = resolve<NcclReduceFn>(handle, "ncclReduce", path);
    lib.broadcast = resolve<NcclBroadcastFn>(handle, "ncclBroadcast", path);
    lib.comm_get_async_error = resolve<NcclCommGetAsyncErrorFn>(handle, "ncclCommGetAsyncError", path);
    lib.comm_finalize = resolve<NcclCommFinalizeFn>(handle, "ncclCommFinalize", path);
    lib.comm_destroy = resolve<NcclCommDestroyFn>(handle, "ncclCommDestroy", path);
    lib.comm_abort = resolve<NcclCommAbortFn>(handle, "ncclCommAbort", path);
    lib.get_error_string = resolve<NcclGetErrorStringFn>(handle, "ncclGetErrorString", path);
    lib.get_last_error = resolve<NcclGetLastErrorFn>(handle, "ncclGetLastError", path);
    return lib;
  } catch (...) {
    dlclose(handle);
    throw;
  }
}

std::string nccl_library_path() {
  const char* named = std::getenv("DNFT_NCCL_LIBRARY");
  return named != nullptr && *named != '\0' ? named : kDefaultName;
}

const NcclLibrary& nccl_library() {
  static std::mutex mutex;
  static std::unique_ptr<NcclLibrary> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  if (loaded == nullptr) loaded = std::make_unique<NcclLibrary>(load_nccl_library(nccl_library_path()));
  return *loaded;
}

}  // namespace dnft::cuda
