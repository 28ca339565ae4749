// The CUDA backend: device memory, one stream per instance (one instance per model), and the kernels of this folder.
// Every call queues work on the stream; copies to the host and the functions returning a value wait for it, and
// synchronize() waits for the rest and reports a fault inside a kernel as a JS-visible error.
#include <memory>
#include <string>

#include "cuda/ops.cuh"

namespace dnft {

namespace cuda {

Scratch::~Scratch() {
  if (ptr_ != nullptr) cudaFree(ptr_);
}

void* Scratch::get(size_t bytes) {
  if (bytes <= bytes_) return ptr_;
  if (ptr_ != nullptr) check(cudaFree(ptr_), "cudaFree (scratch)");
  ptr_ = nullptr;
  bytes_ = 0;
  check(cudaMalloc(&ptr_, bytes), "cudaMalloc (scratch)");
  bytes_ = bytes;
  return ptr_;
}

}  // namespace cuda

namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaOptions& options) : device_(options.device) {
    int count = 0;
    cuda::check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (device_ < 0 || device_ >= count) {
      throw Error(Error::Kind::kRange,
                  "CUDA device " + std::to_string(device_) + " does not exist (" + std::to_string(count) + " visible)");
    }
    cuda::check(cudaSetDevice(device_), "cudaSetDevice");
    cudaDeviceProp prop{};
    cuda::check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
    cuda::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    ctx_ = {stream_, cuda::choose_gemm_kernel(options.precision, prop.major), &scratch_};
  }
  ~CudaBackend() override {
    // Destructors cannot report errors: wait for queued work, then release the stream, ignoring failures.
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }

  const char* name() const override { return "cuda"; }

  void* alloc(size_t bytes) override {
    void* ptr = nullptr;
    const cudaError_t status = cudaMalloc(&ptr, bytes > 0 ? bytes : 1);  // non-null even for empty buffers
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw Error(Error::Kind::kBackend, "CUDA out of memory allocating " + std::to_string(bytes) +
                                             " bytes on device " + std::to_string(device_) + ": " +
                                             cudaGetErrorString(status));
    }
    return ptr;
  }
  void release(void* ptr) override { cudaFree(ptr); }  // called from destructors: no throw
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override {
    if (bytes == 0) return;
    // Host memory is pageable and may be reused by the caller right after: wait for the copy.
    cuda::check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_), "copy to device");
    synchronize();
  }
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    cuda::check(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy to host");
    synchronize();
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0 || dst == src) return;
    cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "device copy");
  }
  void fill(float* dst, float value, size_t n) override { cuda::fill(ctx_, dst, value, n); }
  void synchronize() override { cuda::check(cudaStreamSynchronize(stream_), "a kernel on the model's stream"); }
  void activate() override { cuda::check(cudaSetDevice(device_), "cudaSetDevice"); }

  void fill_normal(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float stddev) override {
    cuda::fill_normal(ctx_, dst, n, seed, stream, offset, stddev);
  }
  void fill_uniform(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float low,
                    float high) override {
    cuda::fill_uniform(ctx_, dst, n, seed, stream, offset, low, high);
  }
  void linear_forward(float* out, const float* in, const float* w, const float* b, int B, int K, int N) override {
    cuda::linear_forward(ctx_, out, in, w, b, B, K, N);
  }
  void linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w, int B,
                       int K, int N) override {
    cuda::linear_backward(ctx_, din, dw, db, dout, in, w, B, K, N);
  }
  void silu_forward(float* out, const float* in, size_t n) override { cuda::silu_forward(ctx_, out, in, n); }
  void silu_backward(float* din, const float* dout, const float* in, size_t n) override {
    cuda::silu_backward(ctx_, din, dout, in, n);
  }
  void time_features(float* out, const float* t, int B, int F) override { cuda::time_features(ctx_, out, t, B, F); }
  void cond_embed_forward(float* out, const int32_t* tokens, const float* table, int B, int L, int V, int W) override {
    cuda::cond_embed_forward(ctx_, out, tokens, table, B, L, V, W);
  }
  void cond_embed_backward(float* dtable, const float* dout, const int32_t* tokens, int B, int L, int V,
                           int W) override {
    cuda::cond_embed_backward(ctx_, dtable, dout, tokens, B, L, V, W);
  }
  void adaln_forward(float* out, float* mean, float* rstd, const float* in, const float* mod, int B, int W) override {
    cuda::adaln_forward(ctx_, out, mean, rstd, in, mod, B, W);
  }
  void adaln_backward(float* din, float* dmod, const float* dout, const float* in, const float* mean, const float* rstd,
                      const float* mod, int B, int W) override {
    cuda::adaln_backward(ctx_, din, dmod, dout, in, mean, rstd, mod, B, W);
  }
  void gelu_forward(float* out, const float* in, size_t n) override { cuda::gelu_forward(ctx_, out, in, n); }
  void gelu_backward(float* din, const float* dout, const float* in, size_t n) override {
    cuda::gelu_backward(ctx_, din, dout, in, n);
  }
  void modulated_norm_forward(float* out, float* mean, float* rstd, const float* in, const float* scale,
                              const float* shift, int B, int T, int W, int mod_stride) override {
    cuda::modulated_norm_forward(ctx_, out, mean, rstd, in, scale, shift, B, T, W, mod_stride);
  }
  void modulated_norm_backward(float* din, float* dscale, float* dshift, const float* dout, const float* in,
                               const float* mean, const float* rstd, const float* scale, int B, int T, int W,
                               int mod_stride) override {
    cuda::modulated_norm_backward(ctx_, din, dscale, dshift, dout, in, mean, rstd, scale, B, T, W, mod_stride);
  }
  void gated_residual_forward(float* out, const float* h, const float* y, const float* gate, int B, int T, int W,
                              int mod_stride) override {
    cuda::gated_residual_forward(ctx_, out, h, y, gate, B, T, W, mod_stride);
  }
  void gated_residual_backward(float* dy, float* dgate, const float* dout, const float* y, const float* gate, int B,
                               int T, int W, int mod_stride) override {
    cuda::gated_residual_backward(ctx_, dy, dgate, dout, y, gate, B, T, W, mod_stride);
  }
  void attention_forward(float* out, float* probs, const float* qkv, int B, int T, int H, int d) override {
    cuda::attention_forward(ctx_, out, probs, qkv, B, T, H, d);
  }
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, int B, int T, int H,
                          int d) override {
    cuda::attention_backward(ctx_, dqkv, dout, qkv, probs, B, T, H, d);
  }
  void patchify(float* tokens, const float* images, int B, int S, int C, int p) override {
    cuda::patchify(ctx_, tokens, images, B, S, C, p);
  }
  void unpatchify(float* images, const float* tokens, int B, int S, int C, int p) override {
    cuda::unpatchify(ctx_, images, tokens, B, S, C, p);
  }
  void add_inplace(float* y, const float* x, size_t n) override { cuda::add_inplace(ctx_, y, x, n); }
  void lincomb(float* out, size_t n, float a, const float* x, float b, const float* y, float c,
               const float* z) override {
    cuda::lincomb(ctx_, out, n, a, x, b, y, c, z);
  }
  void interpolate(float* x_t, float* target, const float* x0, const float* t, int B, int D, uint64_t seed,
                   uint64_t offset) override {
    cuda::interpolate(ctx_, x_t, target, x0, t, B, D, seed, offset);
  }
  double mse_loss(float* dpred, const float* pred, const float* target, size_t n, float scale) override {
    return cuda::mse_loss(ctx_, dpred, pred, target, n, scale);
  }
  double nft_loss(float* dv_theta, const float* v_theta, const float* v_old, const float* v_ref, const float* target,
                  const float* t, const float* r, int B, int D, const NftLossParams& p, float scale) override {
    return cuda::nft_loss(ctx_, dv_theta, v_theta, v_old, v_ref, target, t, r, B, D, p, scale);
  }
  void sde_logp(float* logp, const float* x_next, const float* mean, float std, int B, int D, bool sum) override {
    cuda::sde_logp(ctx_, logp, x_next, mean, std, B, D, sum);
  }
  double grpo_loss(float* dv, const float* v_theta, const float* v_ref, const float* x, const float* x_next,
                   const SdeRow* coefs, const float* advantages, const float* logp_old, int R, int D,
                   const GrpoParams& p, float scale, GrpoStats* stats) override {
    return cuda::grpo_loss(ctx_, dv, v_theta, v_ref, x, x_next, coefs, advantages, logp_old, R, D, p, scale, stats);
  }
  double sum_squares(const float* x, size_t n) override { return cuda::sum_squares(ctx_, x, n); }
  void adamw(float* param, float* m, float* v, const float* grad, size_t n, const AdamWStep& step) override {
    cuda::adamw(ctx_, param, m, v, grad, n, step);
  }

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  cuda::Scratch scratch_;
  cuda::Context ctx_{};
};

}  // namespace

std::unique_ptr<Backend> create_cuda_backend(const CudaOptions& options) {
  const DeviceInfo info = device_info();
  if (!info.cuda_available) throw Error(Error::Kind::kBackend, "device 'cuda' is not available: " + info.reason);
  return std::make_unique<CudaBackend>(options);
}

}  // namespace dnft
