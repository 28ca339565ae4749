// The operations a compute backend provides. The velocity network and the trainers are written once against this
// interface; native/cpu implements it with threaded loops and our GEMM, native/cuda with kernels on one stream.
// Every pointer is a backend pointer (host memory on the CPU, device memory on CUDA) unless its name says host_.
// Parameter gradients accumulate (+=); activation gradients overwrite unless a comment says otherwise.
#pragma once

#include <memory>

#include "core/common.h"
#include "core/math/adamw.h"
#include "core/math/nft_loss.h"
#include "core/math/sde.h"

namespace dnft {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // Memory.
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  // Backend-to-backend copy of distinct (non-overlapping) ranges.
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill(float* dst, float value, size_t n) = 0;
  // Waits until the work queued so far has finished and reports its errors (a no-op on the CPU).
  virtual void synchronize() = 0;
  // Binds the calling thread to this backend's device (cudaSetDevice); every piece of work on a worker thread starts
  // with it. A no-op on the CPU.
  virtual void activate() {}

  // Random draws from the Philox stream (core/math/philox.h): dst[i] = draw(seed, stream, offset + i).
  virtual void fill_normal(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float stddev) = 0;
  virtual void fill_uniform(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float low,
                            float high) = 0;

  // out (B, N) = in (B, K) · w (N, K)^T + b (N); b may be null.
  virtual void linear_forward(float* out, const float* in, const float* w, const float* b, int B, int K, int N) = 0;
  // din (B, K) = dout · w (skipped when din is null); dw (N, K) += dout^T · in; db (N) += Σ_rows dout.
  virtual void linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w,
                               int B, int K, int N) = 0;

  virtual void silu_forward(float* out, const float* in, size_t n) = 0;
  // din = dout · silu'(in)
  virtual void silu_backward(float* din, const float* dout, const float* in, size_t n) = 0;

  // gelu with the tanh approximation (core/math/activation.h); din = dout · gelu'(in)
  virtual void gelu_forward(float* out, const float* in, size_t n) = 0;
  virtual void gelu_backward(float* din, const float* dout, const float* in, size_t n) = 0;

  // out (B, F) = [cos(1000 t f_k), sin(1000 t f_k)], f_k = 10000^(-k / (F/2)).
  virtual void time_features(float* out, const float* t, int B, int F) = 0;

  // out (B, W) = Σ_l table[l, tokens[b, l], :]; table (L, V, W).
  virtual void cond_embed_forward(float* out, const int32_t* tokens, const float* table, int B, int L, int V,
                                  int W) = 0;
  // dtable (L, V, W) += scatter of dout (B, W).
  virtual void cond_embed_backward(float* dtable, const float* dout, const int32_t* tokens, int B, int L, int V,
                                   int W) = 0;

  // Layer norm without affine (eps 1e-6) followed by the adaLN modulation n·(1 + scale) + shift, where
  // mod (B, 2W) holds [scale | shift]; mod null means plain layer norm. Saves mean and rstd (B) for the backward.
  virtual void adaln_forward(float* out, float* mean, float* rstd, const float* in, const float* mod, int B, int W) = 0;
  // din (B, W) += d/din; dmod (B, 2W) = d/dmod (skipped when mod is null).
  virtual void adaln_backward(float* din, float* dmod, const float* dout, const float* in, const float* mean,
                              const float* rstd, const float* mod, int B, int W) = 0;

  // The adaLN of tokens (B, T, W): layer norm of every token, then n·(1 + scale) + shift with the sample's modulation
  // scale[b·mod_stride + w], shift[b·mod_stride + w]; scale null means plain layer norm. Saves mean and rstd (B·T).
  virtual void modulated_norm_forward(float* out, float* mean, float* rstd, const float* in, const float* scale,
                                      const float* shift, int B, int T, int W, int mod_stride) = 0;
  // din (B, T, W) += d/din; dscale and dshift (same stride) = the sums over the tokens (skipped when dscale is null).
  virtual void modulated_norm_backward(float* din, float* dscale, float* dshift, const float* dout, const float* in,
                                       const float* mean, const float* rstd, const float* scale, int B, int T, int W,
                                       int mod_stride) = 0;
  // out (B, T, W) = h + gate ⊙ y with the sample's gate[b·mod_stride + w]; out may be h.
  virtual void gated_residual_forward(float* out, const float* h, const float* y, const float* gate, int B, int T,
                                      int W, int mod_stride) = 0;
  // dy = gate ⊙ dout; dgate (stride mod_stride) = Σ_tokens dout ⊙ y. The residual's own gradient is dout itself.
  virtual void gated_residual_backward(float* dy, float* dgate, const float* dout, const float* y, const float* gate,
                                       int B, int T, int W, int mod_stride) = 0;

  // Multi-head self-attention over T tokens: qkv (B, T, 3W) with rows [q | k | v], head h in columns h·d … (h+1)·d of
  // each part (W = H·d); out (B, T, W) = softmax(q kᵀ/√d) v with the heads side by side. probs (B, H, T, T) keeps the
  // probabilities for the backward.
  virtual void attention_forward(float* out, float* probs, const float* qkv, int B, int T, int H, int d) = 0;
  // dqkv (B, T, 3W) from dout (B, T, W), the forward's qkv and probs.
  virtual void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, int B, int T,
                                  int H, int d) = 0;

  // tokens (B, (S/p)², p·p·C) ← images (B, S·S·C) flattened HWC (core/math/patchify.h); unpatchify is its inverse,
  // and each is the other's backward.
  virtual void patchify(float* tokens, const float* images, int B, int S, int C, int p) = 0;
  virtual void unpatchify(float* images, const float* tokens, int B, int S, int C, int p) = 0;

  // y += x
  virtual void add_inplace(float* y, const float* x, size_t n) = 0;
  // out = a·x + b·y (+ c·z when z is not null); out may be x, y or z.
  virtual void lincomb(float* out, size_t n, float a, const float* x, float b, const float* y, float c,
                       const float* z) = 0;

  // Flow-matching interpolation with eps = normal(seed, kStreamNoise, offset + i):
  // x_t (B, D) = (1 - t) x0 + t eps, target (B, D) = eps - x0, with t (B) per row.
  virtual void interpolate(float* x_t, float* target, const float* x0, const float* t, int B, int D, uint64_t seed,
                           uint64_t offset) = 0;
  // Mean squared error over n elements; writes dpred = scale · d(mse)/dpred and returns the mse.
  virtual double mse_loss(float* dpred, const float* pred, const float* target, size_t n, float scale) = 0;

  // The DiffusionNFT loss (core/math/nft_loss.h) of rows (B, D) with target = eps − x0, times t (B) in (0, 1] and
  // optimality probabilities r (B); v_ref (B, D) may be null when p.kl_coef is 0. Returns the mean over rows and
  // writes dv_theta = scale · ∂loss/∂v_theta.
  virtual double nft_loss(float* dv_theta, const float* v_theta, const float* v_old, const float* v_ref,
                          const float* target, const float* t, const float* r, int B, int D, const NftLossParams& p,
                          float scale) = 0;

  // FlowGRPO (core/math/sde.h). logp (B) = the mean (or sum) over D of log N(x_next; mean, std²).
  virtual void sde_logp(float* logp, const float* x_next, const float* mean, float std, int B, int D, bool sum) = 0;
  // The GRPO loss of R transitions x (R, D) → x_next with per-row coefficients, advantages and stored log p_old;
  // v_ref may be null when p.kl_coef is 0. Returns the mean over rows, writes dv = scale · ∂loss/∂v_theta and adds
  // to *stats when not null.
  virtual double grpo_loss(float* dv, const float* v_theta, const float* v_ref, const float* x, const float* x_next,
                           const SdeRow* coefs, const float* advantages, const float* logp_old, int R, int D,
                           const GrpoParams& p, float scale, GrpoStats* stats) = 0;

  // Σ x², accumulated in double.
  virtual double sum_squares(const float* x, size_t n) = 0;
  // AdamW over n parameters (core/math/adamw.h).
  virtual void adamw(float* param, float* m, float* v, const float* grad, size_t n, const AdamWStep& step) = 0;
};

// The process-wide CPU backend.
Backend& cpu_backend();

}  // namespace dnft
