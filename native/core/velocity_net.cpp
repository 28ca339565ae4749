#include "core/velocity_net.h"

#include "core/math/philox.h"

namespace dnft {

namespace {

// Indices into the layout of param_layout() (net_config.cpp).
constexpr int kTimeFc1 = 0, kTimeFc2 = 2, kCondEmbed = 4, kInputProj = 5, kFirstBlock = 7, kParamsPerBlock = 6;
constexpr int kAda = 0, kFc1 = 2, kFc2 = 4;

int block_param(int block, int which) { return kFirstBlock + block * kParamsPerBlock + which; }

}  // namespace

void NetWorkspace::reserve(Backend& backend, const NetConfig& c, int batch) {
  if (batch <= capacity_) return;
  const size_t B = static_cast<size_t>(batch), W = c.width, E = static_cast<size_t>(c.mlp_ratio) * c.width,
               F = c.time_features;
  const size_t per_block = 4 * W + 2 + 2 * E;
  const size_t total = B * (F + 13 * W + 2 + 2 * E + c.depth * per_block);  // the sum of the take() calls below
  arena_ = Buffer<float>(backend, total);
  float* cursor = arena_.get();
  auto take = [&](size_t floats) {
    float* p = cursor;
    cursor += B * floats;
    return p;
  };
  tf_ = take(F);
  te1_ = take(W);
  te1a_ = take(W);
  e_ = take(W);
  se_ = take(W);
  ce_ = take(W);
  dtmp_ = take(W);
  h_last_ = take(W);
  final_mean_ = take(1);
  final_rstd_ = take(1);
  final_n_ = take(W);
  blocks_.assign(c.depth, Block{});
  for (Block& b : blocks_) {
    b.mod = take(2 * W);
    b.h = take(W);
    b.mean = take(1);
    b.rstd = take(1);
    b.m = take(W);
    b.u = take(E);
    b.a = take(E);
  }
  dh_ = take(W);
  dm_ = take(W);
  dse_ = take(W);
  da_ = take(E);
  du_ = take(E);
  dmod_ = take(2 * W);
  capacity_ = batch;
}

VelocityNet::VelocityNet(const NetConfig& config)
    : config_(config), layout_(param_layout(config)), param_count_(dnft::param_count(layout_)) {}

void VelocityNet::init_params(Backend& backend, float* params, uint64_t seed) const {
  for (const ParamSpec& p : layout_) {
    float* dst = params + p.offset;
    switch (p.init) {
      case ParamInit::kZero:
        backend.fill(dst, 0.0f, p.size);
        break;
      case ParamInit::kUniform:
        backend.fill_uniform(dst, p.size, seed, kStreamInit, p.offset, -p.init_scale, p.init_scale);
        break;
      case ParamInit::kNormal:
        backend.fill_normal(dst, p.size, seed, kStreamInit, p.offset, p.init_scale);
        break;
    }
  }
}

void VelocityNet::forward(Backend& be, NetWorkspace& ws, const float* params, const float* x, const float* t,
                          const int32_t* tokens, int B, float* out) const {
  ws.reserve(be, config_, B);
  const int W = config_.width, E = config_.mlp_ratio * config_.width, F = config_.time_features, D = config_.data_dim;
  const size_t BW = static_cast<size_t>(B) * W, BE = static_cast<size_t>(B) * E;

  // Embedding: silu(time_mlp(features(t)) + Σ_l cond_embed[l, token_l]).
  be.time_features(ws.tf_, t, B, F);
  be.linear_forward(ws.te1_, ws.tf_, param(params, kTimeFc1), param(params, kTimeFc1 + 1), B, F, W);
  be.silu_forward(ws.te1a_, ws.te1_, BW);
  be.linear_forward(ws.e_, ws.te1a_, param(params, kTimeFc2), param(params, kTimeFc2 + 1), B, W, W);
  be.cond_embed_forward(ws.ce_, tokens, param(params, kCondEmbed), B, config_.cond_slots, config_.vocab_size, W);
  be.add_inplace(ws.e_, ws.ce_, BW);
  be.silu_forward(ws.se_, ws.e_, BW);

  float* h = config_.depth > 0 ? ws.blocks_[0].h : ws.h_last_;
  be.linear_forward(h, x, param(params, kInputProj), param(params, kInputProj + 1), B, D, W);
  for (int i = 0; i < config_.depth; ++i) {
    NetWorkspace::Block& blk = ws.blocks_[i];
    float* h_next = i + 1 < config_.depth ? ws.blocks_[i + 1].h : ws.h_last_;
    be.linear_forward(blk.mod, ws.se_, param(params, block_param(i, kAda)), param(params, block_param(i, kAda) + 1), B,
                      W, 2 * W);
    be.adaln_forward(blk.m, blk.mean, blk.rstd, blk.h, blk.mod, B, W);
    be.linear_forward(blk.u, blk.m, param(params, block_param(i, kFc1)), param(params, block_param(i, kFc1) + 1), B, W,
                      E);
    be.silu_forward(blk.a, blk.u, BE);
    be.linear_forward(h_next, blk.a, param(params, block_param(i, kFc2)), param(params, block_param(i, kFc2) + 1), B, E,
                      W);
    be.add_inplace(h_next, blk.h, BW);
  }
  const int out_proj = block_param(config_.depth, 0);
  be.adaln_forward(ws.final_n_, ws.final_mean_, ws.final_rstd_, ws.h_last_, nullptr, B, W);
  be.linear_forward(out, ws.final_n_, param(params, out_proj), param(params, out_proj + 1), B, W, D);
}

void VelocityNet::backward(Backend& be, NetWorkspace& ws, const float* params, float* grads, const float* x,
                           const int32_t* tokens, const float* dout, int B, float* dx) const {
  const int W = config_.width, E = config_.mlp_ratio * config_.width, F = config_.time_features, D = config_.data_dim;
  const size_t BW = static_cast<size_t>(B) * W, BE = static_cast<size_t>(B) * E;
  const int out_proj = block_param(config_.depth, 0);

  // dh accumulates dL/dh through the residual stream; dse accumulates dL/d silu(e) over the blocks' adaLN.
  be.linear_backward(ws.dm_, param(grads, out_proj), param(grads, out_proj + 1), dout, ws.final_n_,
                     param(params, out_proj), B, W, D);
  be.fill(ws.dh_, 0.0f, BW);
  be.adaln_backward(ws.dh_, nullptr, ws.dm_, ws.h_last_, ws.final_mean_, ws.final_rstd_, nullptr, B, W);
  be.fill(ws.dse_, 0.0f, BW);
  for (int i = config_.depth - 1; i >= 0; --i) {
    NetWorkspace::Block& blk = ws.blocks_[i];
    const int fc1 = block_param(i, kFc1), fc2 = block_param(i, kFc2), ada = block_param(i, kAda);
    be.linear_backward(ws.da_, param(grads, fc2), param(grads, fc2 + 1), ws.dh_, blk.a, param(params, fc2), B, E, W);
    be.silu_backward(ws.du_, ws.da_, blk.u, BE);
    be.linear_backward(ws.dm_, param(grads, fc1), param(grads, fc1 + 1), ws.du_, blk.m, param(params, fc1), B, W, E);
    be.adaln_backward(ws.dh_, ws.dmod_, ws.dm_, blk.h, blk.mean, blk.rstd, blk.mod, B, W);
    be.linear_backward(ws.dtmp_, param(grads, ada), param(grads, ada + 1), ws.dmod_, ws.se_, param(params, ada), B, W,
                       2 * W);
    be.add_inplace(ws.dse_, ws.dtmp_, BW);
  }
  be.linear_backward(dx, param(grads, kInputProj), param(grads, kInputProj + 1), ws.dh_, x, param(params, kInputProj),
                     B, D, W);

  // de = dse · silu'(e) flows into both the time MLP and the condition embedding.
  float* de = ws.dm_;
  be.silu_backward(de, ws.dse_, ws.e_, BW);
  be.cond_embed_backward(param(grads, kCondEmbed), de, tokens, B, config_.cond_slots, config_.vocab_size, W);
  be.linear_backward(ws.dtmp_, param(grads, kTimeFc2), param(grads, kTimeFc2 + 1), de, ws.te1a_,
                     param(params, kTimeFc2), B, W, W);
  be.silu_backward(ws.dh_, ws.dtmp_, ws.te1_, BW);
  be.linear_backward(nullptr, param(grads, kTimeFc1), param(grads, kTimeFc1 + 1), ws.dh_, ws.tf_,
                     param(params, kTimeFc1), B, F, W);
}

}  // namespace dnft
