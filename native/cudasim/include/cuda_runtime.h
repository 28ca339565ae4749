// The simulated GPU's CUDA runtime (docs/gpu.md, "The simulated GPU"): the part of cuda_runtime.h that native/cuda
// and its tests use, and nothing more, so that a kernel reaching for anything else (atomics, shuffles, __shared__
// without DNFT_SHARED, dynamic shared memory, cudaMemset, ...) fails to compile in the DNFT_CUDA=SIM build.
// Kernels are plain C++ run by the runtime library (native/cudasim/src): every CUDA thread is a fiber.
#pragma once

#include <math.h>

#include <cmath>
#include <cstddef>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#define CUDART_VERSION 13000

// Qualifiers: a kernel is an ordinary function, a __device__ lambda an ordinary lambda.
#define __global__
#define __device__
#define __host__
#define __launch_bounds__(...)

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

namespace cudasim {
struct BuiltinIndices {
  uint3 thread_idx, block_idx, block_dim, grid_dim;
};
// The built-in indices of the CUDA thread running on this OS thread, rewritten on every fiber switch. The address
// is fixed for the OS thread (fibers never migrate), hence `const`; the values are reloaded after every call that
// may switch (a barrier, a warp collective). A function rather than `extern thread_local` variables, whose null
// checks GCC 12 miscompiles under UBSan.
[[gnu::const]] BuiltinIndices& builtin_indices();
}  // namespace cudasim

#define threadIdx (::cudasim::builtin_indices().thread_idx)
#define blockIdx (::cudasim::builtin_indices().block_idx)
#define blockDim (::cudasim::builtin_indices().block_dim)
#define gridDim (::cudasim::builtin_indices().grid_dim)

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorAssert = 710,
  cudaErrorIllegalInstruction = 715,
  cudaErrorLaunchFailure = 719,
  cudaErrorUnknown = 999,
};

enum cudaMemcpyKind {
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};

struct CUstream_st;
struct CUevent_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;
using cudaHostFn_t = void (*)(void*);

constexpr unsigned cudaStreamNonBlocking = 0x01;
constexpr unsigned cudaEventDisableTiming = 0x02;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int major;
  int minor;
};

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaDeviceSynchronize();

cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags);
cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* user_data);

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventDestroy(cudaEvent_t event);

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);

namespace cudasim {

// A launched kernel with its arguments copied by value, as a real launch does; run_thread() runs the kernel body for
// the CUDA thread whose indices are current.
class KernelBody {
 public:
  virtual ~KernelBody() = default;
  virtual void run_thread() = 0;
  // The argument bytes: the runtime looks in them for device pointers (the memory the kernel may touch).
  virtual const void* arg_bytes() const = 0;
  virtual size_t arg_size() const = 0;
};

// Queues body on stream as a grid × block launch; configuration errors become the calling thread's last error.
void launch_body(const char* what, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                 std::unique_ptr<KernelBody> body);

template <typename... Params, typename... Args>
void launch(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            cudaStream_t stream, Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "a kernel launch passes every parameter");
  using Stored = std::tuple<std::decay_t<Params>...>;
  class Body final : public KernelBody {
   public:
    Body(void (*k)(Params...), Stored a) : kernel_(k), args_(std::move(a)) {}
    void run_thread() override { std::apply(kernel_, args_); }
    const void* arg_bytes() const override { return &args_; }
    size_t arg_size() const override { return sizeof(Stored); }

   private:
    void (*kernel_)(Params...);
    Stored args_;
  };
  launch_body(what, grid, block, shared_bytes, stream,
              std::make_unique<Body>(kernel, Stored(std::forward<Args>(args)...)));
}

// __syncthreads and __trap, with the call site that the barrier checks compare.
void barrier(const char* file, int line);
[[noreturn]] void trap(const char* file, int line);

// DNFT_SHARED's storage: the slot of this block's shared-memory arena that `tag` (one per declaration and template
// instantiation) names, NaN-filled at block start.
struct SharedTag {
  char unused;
};
void* shared_array(SharedTag* tag, size_t bytes, size_t align, const char* name, const char* file, int line);

}  // namespace cudasim

inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  cudasim::barrier(file, line);
}
[[noreturn]] inline void __trap(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  cudasim::trap(file, line);
}
