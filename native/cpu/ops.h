// CPU kernels, one file per op family (forward and backward side by side). Shapes as in core/backend.h.
#pragma once

#include "core/math/adamw.h"
#include "core/math/nft_loss.h"
#include "core/math/sde.h"

namespace dnft::cpu {

// linear.cpp
void linear_forward(float* out, const float* in, const float* w, const float* b, int B, int K, int N);
void linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w, int B, int K,
                     int N);

// activation.cpp
void silu_forward(float* out, const float* in, size_t n);
void silu_backward(float* din, const float* dout, const float* in, size_t n);
void gelu_forward(float* out, const float* in, size_t n);
void gelu_backward(float* din, const float* dout, const float* in, size_t n);

// elementwise.cpp
void add_inplace(float* y, const float* x, size_t n);
void lincomb(float* out, size_t n, float a, const float* x, float b, const float* y, float c, const float* z);

// embedding.cpp
void time_features(float* out, const float* t, int B, int F);
void cond_embed_forward(float* out, const int32_t* tokens, const float* table, int B, int L, int V, int W);
void cond_embed_backward(float* dtable, const float* dout, const int32_t* tokens, int B, int L, int V, int W);

// adaln.cpp
void adaln_forward(float* out, float* mean, float* rstd, const float* in, const float* mod, int B, int W);
void adaln_backward(float* din, float* dmod, const float* dout, const float* in, const float* mean, const float* rstd,
                    const float* mod, int B, int W);
void modulated_norm_forward(float* out, float* mean, float* rstd, const float* in, const float* scale,
                            const float* shift, int B, int T, int W, int mod_stride);
void modulated_norm_backward(float* din, float* dscale, float* dshift, const float* dout, const float* in,
                             const float* mean, const float* rstd, const float* scale, int B, int T, int W,
                             int mod_stride);
void gated_residual_forward(float* out, const float* h, const float* y, const float* gate, int B, int T, int W,
                            int mod_stride);
void gated_residual_backward(float* dy, float* dgate, const float* dout, const float* y, const float* gate, int B,
                             int T, int W, int mod_stride);

// attention.cpp
void attention_forward(float* out, float* probs, const float* qkv, int B, int T, int H, int d);
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, int B, int T, int H,
                        int d);

// patchify.cpp
void patchify(float* tokens, const float* images, int B, int S, int C, int p);
void unpatchify(float* images, const float* tokens, int B, int S, int C, int p);

// random.cpp
void fill_normal(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float stddev);
void fill_uniform(float* dst, size_t n, uint64_t seed, uint32_t stream, uint64_t offset, float low, float high);

// flow_matching.cpp
void interpolate(float* x_t, float* target, const float* x0, const float* t, int B, int D, uint64_t seed,
                 uint64_t offset);
double mse_loss(float* dpred, const float* pred, const float* target, size_t n, float scale);

// nft_loss.cpp
double nft_loss(float* dv_theta, const float* v_theta, const float* v_old, const float* v_ref, const float* target,
                const float* t, const float* r, int B, int D, const NftLossParams& p, float scale);

// sde.cpp
void sde_logp(float* logp, const float* x_next, const float* mean, float std, int B, int D, bool sum);
double grpo_loss(float* dv, const float* v_theta, const float* v_ref, const float* x, const float* x_next,
                 const SdeRow* coefs, const float* advantages, const float* logp_old, int R, int D, const GrpoParams& p,
                 float scale, GrpoStats* stats);

// optimizer.cpp
double sum_squares(const float* x, size_t n);
void adamw(float* param, float* m, float* v, const float* grad, size_t n, const AdamWStep& step);

}  // namespace dnft::cpu
