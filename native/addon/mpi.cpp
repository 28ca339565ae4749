#include "addon/mpi.h"

#include <dlfcn.h>

#if defined(__aarch64__) && defined(__GLIBC__)
// Bind the dl functions to their first aarch64 versions (libdl, glibc 2.17) rather than the copies glibc 2.34 moved
// into libc, so the linux-arm64 prebuild keeps its glibc 2.32 floor (docs/install.md, scripts/ci-arm64.sh).
__asm__(".symver dlopen,dlopen@GLIBC_2.17");
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
__asm__(".symver dlerror,dlerror@GLIBC_2.17");
__asm__(".symver dlclose,dlclose@GLIBC_2.17");
#endif

#include <string>
#include <vector>

#include "addon/convert.h"
#include "addon/promise_worker.h"
#include "core/common.h"
#include "core/device.h"
#include "mpi/dnft_mpi.h"

namespace dnft::addon {

namespace {

// The entry points of libdnft_mpi.so; set once by mpiOpen, then never changed.
struct MpiLibrary {
  bool open = false;
  double timeout = 0;  // seconds a collective may wait (mpiOpen's), NCCL's too
  decltype(&dnft_mpi_rank) rank = nullptr;
  decltype(&dnft_mpi_size) size = nullptr;
  decltype(&dnft_mpi_sum_f32) sum_f32 = nullptr;
  decltype(&dnft_mpi_sum_f64) sum_f64 = nullptr;
  decltype(&dnft_mpi_allgather) allgather = nullptr;
  decltype(&dnft_mpi_bcast) bcast = nullptr;
  decltype(&dnft_mpi_abort) abort = nullptr;
  decltype(&dnft_mpi_finalize) finalize = nullptr;
};

MpiLibrary g_mpi;
constexpr size_t kErrorSize = 512;

const MpiLibrary& library() {
  if (!g_mpi.open) throw Error(Error::Kind::kState, "MPI is not open: call mpiOpen first");
  return g_mpi;
}

void check(int code, const char* error) {
  if (code != 0) throw Error(Error::Kind::kDistributed, error);
}

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(bool host_memory) : host_memory_(host_memory) {}

  void sum(double* values, size_t count) override {
    char error[kErrorSize] = "";
    check(library().sum_f64(values, count, error, kErrorSize), error);
  }

  void sum(Backend& backend, float* data, size_t count) override {
    char error[kErrorSize] = "";
    if (host_memory_) {
      check(library().sum_f32(data, count, error, kErrorSize), error);
      return;
    }
    staging_.resize(count);
    backend.copy_to_host(staging_.data(), data, count * sizeof(float));
    check(library().sum_f32(staging_.data(), count, error, kErrorSize), error);
    backend.copy_to_device(data, staging_.data(), count * sizeof(float));
  }

 private:
  bool host_memory_;
  std::vector<float> staging_;
};

template <typename F>
F symbol(void* handle, const char* name, const std::string& path) {
  void* address = dlsym(handle, name);
  if (address == nullptr)
    throw Error(Error::Kind::kBackend, path + " has no " + name + ": rebuild it (npm run build:mpi)");
  return reinterpret_cast<F>(address);
}

// mpiOpen(path, timeoutSeconds) -> { rank, size }: loads the library (once) and initialises MPI.
Napi::Value MpiOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "mpiOpen(path, timeoutSeconds)");
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const double timeout = info[1].As<Napi::Number>().DoubleValue();
  if (!g_mpi.open) {
    // RTLD_GLOBAL: Open MPI loads its components with dlopen, and they resolve libmpi's symbols globally.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (handle == nullptr) {
      const char* reason = dlerror();
      throw make_js_error(env, "cannot load " + path + ": " + (reason != nullptr ? reason : "unknown error"),
                          "DNFT_BACKEND");
    }
    try {
      auto version = symbol<decltype(&dnft_mpi_abi_version)>(handle, "dnft_mpi_abi_version", path);
      if (version() != DNFT_MPI_ABI_VERSION) {
        throw Error(Error::Kind::kBackend,
                    path + " is from another version of the package: rebuild it (npm run build:mpi)");
      }
      auto init = symbol<decltype(&dnft_mpi_init)>(handle, "dnft_mpi_init", path);
      MpiLibrary lib;
      lib.rank = symbol<decltype(&dnft_mpi_rank)>(handle, "dnft_mpi_rank", path);
      lib.size = symbol<decltype(&dnft_mpi_size)>(handle, "dnft_mpi_size", path);
      lib.sum_f32 = symbol<decltype(&dnft_mpi_sum_f32)>(handle, "dnft_mpi_sum_f32", path);
      lib.sum_f64 = symbol<decltype(&dnft_mpi_sum_f64)>(handle, "dnft_mpi_sum_f64", path);
      lib.allgather = symbol<decltype(&dnft_mpi_allgather)>(handle, "dnft_mpi_allgather", path);
      lib.bcast = symbol<decltype(&dnft_mpi_bcast)>(handle, "dnft_mpi_bcast", path);
      lib.abort = symbol<decltype(&dnft_mpi_abort)>(handle, "dnft_mpi_abort", path);
      lib.finalize = symbol<decltype(&dnft_mpi_finalize)>(handle, "dnft_mpi_finalize", path);
      char error[kErrorSize] = "";
      if (init(timeout, error, kErrorSize) != 0) throw Error(Error::Kind::kBackend, error);
      lib.open = true;
      lib.timeout = timeout;
      g_mpi = lib;
    } catch (const Error& error) {
      dlclose(handle);
      throw make_js_error(env, error.what(), "DNFT_BACKEND");
    }
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("rank", g_mpi.rank());
  result.Set("size", g_mpi.size());
  return result;
}

template <typename F>
Napi::Value guarded(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (const Error& error) {
    throw make_js_error(env, error.what(), error.kind() == Error::Kind::kState ? "DNFT_STATE" : "DNFT_DISTRIBUTED");
  }
}

Napi::Uint8Array bytes_arg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), "expected a Uint8Array");
  }
  return info[index].As<Napi::Uint8Array>();
}

// mpiAllgather(bytes: Uint8Array) -> Uint8Array (size × bytes.length), every rank's bytes in rank order.
Napi::Value MpiAllgather(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const MpiLibrary& lib = library();
    Napi::Uint8Array send = bytes_arg(info, 0);
    Napi::Uint8Array recv = Napi::Uint8Array::New(info.Env(), send.ElementLength() * lib.size());
    char error[kErrorSize] = "";
    check(lib.allgather(send.Data(), send.ElementLength(), recv.Data(), error, kErrorSize), error);
    return recv;
  });
}

// mpiSum(values: Float64Array): values ← the sum over the ranks, the same bits on every rank.
Napi::Value MpiSum(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const MpiLibrary& lib = library();
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      throw Napi::TypeError::New(info.Env(), "mpiSum expects a Float64Array");
    }
    Napi::Float64Array values = info[0].As<Napi::Float64Array>();
    char error[kErrorSize] = "";
    check(lib.sum_f64(values.Data(), values.ElementLength(), error, kErrorSize), error);
    return info.Env().Undefined();
  });
}

// mpiBcast(bytes: Uint8Array, root): bytes ← root's.
Napi::Value MpiBcast(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const MpiLibrary& lib = library();
    Napi::Uint8Array data = bytes_arg(info, 0);
    const int root = static_cast<int>(integer_arg(info, 1, "root", 0, lib.size() - 1));
    char error[kErrorSize] = "";
    check(lib.bcast(data.Data(), data.ElementLength(), root, error, kErrorSize), error);
    return info.Env().Undefined();
  });
}

// mpiAbort(message, code): ends every rank of the job.
Napi::Value MpiAbort(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const MpiLibrary& lib = library();
    const std::string message = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    lib.abort(message.c_str(), static_cast<int>(integer_arg(info, 1, "code", 1, 255)));
    return info.Env().Undefined();
  });
}

// mpiFinalize(): MPI_Finalize once, if MPI is open (the process exits after it).
Napi::Value MpiFinalize(const Napi::CallbackInfo& info) {
  if (g_mpi.open) g_mpi.finalize();
  return info.Env().Undefined();
}

// ncclVersion() -> string: NCCL's version, loading libnccl.so.2 ($DNFT_NCCL_LIBRARY) on first use; throws
// DNFT_BACKEND with the reason and the fix when it cannot be loaded (or the build has no CUDA).
Napi::Value NcclVersion(const Napi::CallbackInfo& info) {
  try {
    return Napi::String::New(info.Env(), nccl_version());
  } catch (const Error& error) {
    throw_js_error(info.Env(), error);
  }
}

}  // namespace

void define_mpi(Napi::Env env, Napi::Object exports) {
  exports.Set("mpiOpen", Napi::Function::New<MpiOpen>(env, "mpiOpen"));
  exports.Set("mpiAllgather", Napi::Function::New<MpiAllgather>(env, "mpiAllgather"));
  exports.Set("mpiSum", Napi::Function::New<MpiSum>(env, "mpiSum"));
  exports.Set("mpiBcast", Napi::Function::New<MpiBcast>(env, "mpiBcast"));
  exports.Set("mpiAbort", Napi::Function::New<MpiAbort>(env, "mpiAbort"));
  exports.Set("mpiFinalize", Napi::Function::New<MpiFinalize>(env, "mpiFinalize"));
  exports.Set("ncclVersion", Napi::Function::New<NcclVersion>(env, "ncclVersion"));
}

std::shared_ptr<Communicator> mpi_communicator(bool host_memory) {
  library();
  return std::make_shared<MpiCommunicator>(host_memory);
}

std::shared_ptr<Communicator> nccl_communicator(Backend& backend) {
  const MpiLibrary& lib = library();
  NcclSetup setup;
  setup.rank = lib.rank();
  setup.size = lib.size();
  setup.timeout = lib.timeout;
  setup.host = std::make_shared<MpiCommunicator>(true);
  setup.broadcast = [&lib](void* data, size_t bytes) {
    char error[kErrorSize] = "";
    check(lib.bcast(data, bytes, 0, error, kErrorSize), error);
  };
  return create_nccl_communicator(backend, setup);
}

}  // namespace dnft::addon
