// CUDA kernel launchers, one file per op family with the names of native/cpu (forward and backward side by side).
// Shapes and semantics as in core/backend.h; every pointer is device memory; work is queued on ctx.stream and only
// the functions returning a value wait for it.
#pragma once

#include "core/math/adamw.h"
#include "core/math/nft_loss.h"
#include "core/math/sde.h"
#include "cuda/context.cuh"

namespace dnft::cuda {

// gemm.cu
void sgemm(const Context& ctx, const GemmArgs& args);

// linear.cu
void linear_forward(const Context& ctx, float* out, const float* in, const float* w, const float* b, int B, int K,
                    int N);
void linear_backward(const Context& ctx, float* din, float* dw, float* db, const float* dout, const float* in,
                     const float* w, int B, int K, int N);

// activation.cu
void silu_forward(const Context& ctx, float* out, const float* in, size_t n);
void silu_backward(const Context& ctx, float* din, const float* dout, const float* in, size_t n);
void gelu_forward(const Context& ctx, float* out, const float* in, size_t n);
void gelu_backward(const Context& ctx, float* din, const float* dout, const float* in, size_t n);

// elementwise.cu
void fill(const Context& ctx, float* dst, float value, size_t n);
void add_inplace(const Context& ctx, float* y, const float* x, size_t n);
void lincomb(const Context& ctx, float* out, size_t n, float a, const float* x, float b, const float* y, float c,
             const float* z);

// embedding.cu
void time_features(const Context& ctx, float* out, const float* t, int B, int F);
void cond_embed_forward(const Context& ctx, float* out, const int32_t* tokens, const float* table, int B, int L, int V,
                        int W);
void cond_embed_backward(const Context& ctx, float* dtable, const float* dout, const int32_t* tokens, int B, int L,
                         int V, int W);

// adaln.cu
void adaln_forward(const Context& ctx, float* out, float* mean, float* rstd, const float* in, const float* mod, int B,
                   int W);
void adaln_backward(const Context& ctx, float* din, float* dmod, const float* dout, const float* in, const float* mean,
                    const float* rstd, const float* mod, int B, int W);
void modulated_norm_forward(const Context& ctx, float* out, float* mean, float* rstd, const float* in,
                            const float* scale, const float* shift, int B, int T, int W, int mod_stride);
void modulated_norm_backward(const Context& ctx, float* din, float* dscale, float* dshift, const float* dout,
                             const float* in, const float* mean, const float* rstd, const float* scale, int B, int T,
                             int W, int mod_stride);
void gated_residual_forward(const Context& ctx, float* out, const float* h, const float* y, const float* gate, int B,
                            int T, int W, int mod_stride);
void gated_residual_backward(const Context& ctx, float* dy, float* dgate, const float* dout, const float* y,
                             const float* gate, int B, int T, int W, int mod_stride);

// attention.cu
void attention_forward(const Context& ctx, float* out, float* probs, const float* qkv, int B, int T, int H, int d);
void attention_backward(const Context& ctx, float* dqkv, const float* dout, const float* qkv, const float* probs, int B,
                        int T, int H, int d);

// patchify.cu
void patchify(const Context& ctx, float* tokens, const float* images, int B, int S, int C, int p);
void unpatchify(const Context& ctx, float* images, const float* tokens, int B, int S, int C, int p);

// random.cu
void fill_normal(const Context& ctx, float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset,
                 float stddev);
void fill_uniform(const Context& ctx, float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float low,
                  float high);

// flow_matching.cu
void interpolate(const Context& ctx, float* x_t, float* target, const float* x0, const float* t, int B, int D,
                 uint64_t seed, uint64_t offset);
double mse_loss(const Context& ctx, float* dpred, const float* pred, const float* target, size_t n, float scale);

// nft_loss.cu
double nft_loss(const Context& ctx, float* dv_theta, const float* v_theta, const float* v_old, const float* v_ref,
                const float* target, const float* t, const float* r, int B, int D, const NftLossParams& p, float scale);

// sde.cu
void sde_logp(const Context& ctx, float* logp, const float* x_next, const float* mean, float std, int B, int D,
              bool sum);
double grpo_loss(const Context& ctx, float* dv, const float* v_theta, const float* v_ref, const float* x,
                 const float* x_next, const SdeRow* coefs, const float* advantages, const float* logp_old, int R, int D,
                 const GrpoParams& p, float scale, GrpoStats* stats);

// optimizer.cu
double sum_squares(const Context& ctx, const float* x, size_t n);
void adamw(const Context& ctx, float* param, float* m, float* v, const float* grad, size_t n, const AdamWStep& step);

}  // namespace dnft::cuda
