// The CPU backend: host memory and the threaded kernels of this folder.
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/backend.h"
#include "cpu/ops.h"

namespace dnft {

namespace {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  void* alloc(size_t bytes) override {
    // 64-byte alignment for the vector kernels; aligned_alloc needs a multiple of the alignment.
    void* ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (ptr == nullptr) throw Error(Error::Kind::kBackend, "out of host memory allocating " + std::to_string(bytes));
    return ptr;
  }
  void release(void* ptr) override { std::free(ptr); }
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override { std::memcpy(dst, host_src, bytes); }
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override { std::memcpy(host_dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void fill(float* dst, float value, size_t n) override {
    for (size_t i = 0; i < n; ++i) dst[i] = value;
  }
  void synchronize() override {}

  void fill_normal(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float stddev) override {
    cpu::fill_normal(dst, n, seed, stream, offset, stddev);
  }
  void fill_uniform(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float low,
                    float high) override {
    cpu::fill_uniform(dst, n, seed, stream, offset, low, high);
  }
  void linear_forward(float* out, const float* in, const float* w, const float* b, int B, int K, int N) override {
    cpu::linear_forward(out, in, w, b, B, K, N);
  }
  void linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w, int B,
                       int K, int N) override {
    cpu::linear_backward(din, dw, db, dout, in, w, B, K, N);
  }
  void silu_forward(float* out, const float* in, size_t n) override { cpu::silu_forward(out, in, n); }
  void silu_backward(float* din, const float* dout, const float* in, size_t n) override {
    cpu::silu_backward(din, dout, in, n);
  }
  void gelu_forward(float* out, const float* in, size_t n) override { cpu::gelu_forward(out, in, n); }
  void gelu_backward(float* din, const float* dout, const float* in, size_t n) override {
    cpu::gelu_backward(din, dout, in, n);
  }
  void time_features(float* out, const float* t, int B, int F) override { cpu::time_features(out, t, B, F); }
  void cond_embed_forward(float* out, const int32_t* tokens, const float* table, int B, int L, int V, int W) override {
    cpu::cond_embed_forward(out, tokens, table, B, L, V, W);
  }
  void cond_embed_backward(float* dtable, const float* dout, const int32_t* tokens, int B, int L, int V,
                           int W) override {
    cpu::cond_embed_backward(dtable, dout, tokens, B, L, V, W);
  }
  void adaln_forward(float* out, float* mean, float* rstd, const float* in, const float* mod, int B, int W) override {
    cpu::adaln_forward(out, mean, rstd, in, mod, B, W);
  }
  void adaln_backward(float* din, float* dmod, const float* dout, const float* in, const float* mean, const float* rstd,
                      const float* mod, int B, int W) override {
    cpu::adaln_backward(din, dmod, dout, in, mean, rstd, mod, B, W);
  }
  void modulated_norm_forward(float* out, float* mean, float* rstd, const float* in, const float* scale,
                              const float* shift, int B, int T, int W, int mod_stride) override {
    cpu::modulated_norm_forward(out, mean, rstd, in, scale, shift, B, T, W, mod_stride);
  }
  void modulated_norm_backward(float* din, float* dscale, float* dshift, const float* dout, const float* in,
                               const float* mean, const float* rstd, const float* scale, int B, int T, int W,
                               int mod_stride) override {
    cpu::modulated_norm_backward(din, dscale, dshift, dout, in, mean, rstd, scale, B, T, W, mod_stride);
  }
  void gated_residual_forward(float* out, const float* h, const float* y, const float* gate, int B, int T, int W,
                              int mod_stride) override {
    cpu::gated_residual_forward(out, h, y, gate, B, T, W, mod_stride);
  }
  void gated_residual_backward(float* dy, float* dgate, const float* dout, const float* y, const float* gate, int B,
                               int T, int W, int mod_stride) override {
    cpu::gated_residual_backward(dy, dgate, dout, y, gate, B, T, W, mod_stride);
  }
  void attention_forward(float* out, float* probs, const float* qkv, int B, int T, int H, int d) override {
    cpu::attention_forward(out, probs, qkv, B, T, H, d);
  }
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, int B, int T, int H,
                          int d) override {
    cpu::attention_backward(dqkv, dout, qkv, probs, B, T, H, d);
  }
  void patchify(float* tokens, const float* images, int B, int S, int C, int p) override {
    cpu::patchify(tokens, images, B, S, C, p);
  }
  void unpatchify(float* images, const float* tokens, int B, int S, int C, int p) override {
    cpu::unpatchify(images, tokens, B, S, C, p);
  }
  void add_inplace(float* y, const float* x, size_t n) override { cpu::add_inplace(y, x, n); }
  double nft_loss(float* dv_theta, const float* v_theta, const float* v_old, const float* v_ref, const float* target,
                  const float* t, const float* r, int B, int D, const NftLossParams& p, float scale) override {
    return cpu::nft_loss(dv_theta, v_theta, v_old, v_ref, target, t, r, B, D, p, scale);
  }
  void sde_logp(float* logp, const float* x_next, const float* mean, float std, int B, int D, bool sum) override {
    cpu::sde_logp(logp, x_next, mean, std, B, D, sum);
  }
  double grpo_loss(float* dv, const float* v_theta, const float* v_ref, const float* x, const float* x_next,
                   const SdeRow* coefs, const float* advantages, const float* logp_old, int R, int D,
                   const GrpoParams& p, float scale, GrpoStats* stats) override {
    return cpu::grpo_loss(dv, v_theta, v_ref, x, x_next, coefs, advantages, logp_old, R, D, p, scale, stats);
  }
  void lincomb(float* out, size_t n, float a, const float* x, float b, const float* y, float c,
               const float* z) override {
    cpu::lincomb(out, n, a, x, b, y, c, z);
  }
  void interpolate(float* x_t, float* target, const float* x0, const float* t, int B, int D, uint64_t seed,
                   uint64_t offset) override {
    cpu::interpolate(x_t, target, x0, t, B, D, seed, offset);
  }
  double mse_loss(float* dpred, const float* pred, const float* target, size_t n, float scale) override {
    return cpu::mse_loss(dpred, pred, target, n, scale);
  }
  double sum_squares(const float* x, size_t n) override { return cpu::sum_squares(x, n); }
  void adamw(float* param, float* m, float* v, const float* grad, size_t n, const AdamWStep& step) override {
    cpu::adamw(param, m, v, grad, n, step);
  }
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace dnft
