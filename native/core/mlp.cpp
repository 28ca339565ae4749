#include "core/mlp.h"

#include "core/embedding_net.h"

namespace dnft {

namespace {

// Indices into the layout of param_layout() (net_config.cpp), after the embedding's.
constexpr int kInputProj = kEmbeddingParams, kFirstBlock = kInputProj + 2, kParamsPerBlock = 6;
constexpr int kAda = 0, kFc1 = 2, kFc2 = 4;

int block_param(int block, int which) { return kFirstBlock + block * kParamsPerBlock + which; }

// Activations of batches up to capacity, and the backward's scratch.
class MlpWorkspace final : public NetWorkspace {
 public:
  void reserve(Backend& backend, const NetConfig& c, int batch) {
    if (batch <= capacity_) return;
    const size_t B = static_cast<size_t>(batch), W = c.width, E = static_cast<size_t>(c.mlp_ratio) * c.width;
    // carve_arena's sizing pass clears the pointers: no capacity until the new arena is carved (an allocation that
    // fails, e.g. out of GPU memory, must not leave the old capacity pointing nowhere), and the old arena goes first.
    capacity_ = 0;
    arena_ = Buffer<float>();
    arena_ = carve_arena(backend, [&](auto take) {
      embed.assign(take, c, B);
      dtmp = take(B * W);
      h_last = take(B * W);
      final_mean = take(B);
      final_rstd = take(B);
      final_n = take(B * W);
      blocks.assign(c.depth, Block{});
      for (Block& b : blocks) {
        b.mod = take(B * 2 * W);
        b.h = take(B * W);
        b.mean = take(B);
        b.rstd = take(B);
        b.m = take(B * W);
        b.u = take(B * E);
        b.a = take(B * E);
      }
      dh = take(B * W);
      dm = take(B * W);
      dse = take(B * W);
      da = take(B * E);
      du = take(B * E);
      dmod = take(B * 2 * W);
    });
    capacity_ = batch;
  }

  struct Block {
    float* mod;   // (B, 2W) adaLN [scale | shift]
    float* h;     // (B, W) block input
    float* mean;  // (B)
    float* rstd;  // (B)
    float* m;     // (B, W) modulated layer norm
    float* u;     // (B, eW) fc1 output
    float* a;     // (B, eW) silu(u)
  };
  EmbeddingActivations embed{};
  float *h_last = nullptr, *final_mean = nullptr, *final_rstd = nullptr, *final_n = nullptr;
  std::vector<Block> blocks;
  // backward scratch
  float *dh = nullptr, *dm = nullptr, *da = nullptr, *du = nullptr, *dmod = nullptr, *dse = nullptr, *dtmp = nullptr;

 private:
  Buffer<float> arena_;
  int capacity_ = 0;
};

}  // namespace

std::unique_ptr<NetWorkspace> MlpNet::make_workspace() const { return std::make_unique<MlpWorkspace>(); }

void MlpNet::forward(Backend& be, NetWorkspace& workspace, const NetParams& params, const float* x, const float* t,
                     const int32_t* tokens, int B, float* out) const {
  const NetConfig& c = config();
  MlpWorkspace& ws = dynamic_cast<MlpWorkspace&>(workspace);
  ws.reserve(be, c, B);
  const int W = c.width, E = c.mlp_ratio * c.width;
  const size_t BW = static_cast<size_t>(B) * W, BE = static_cast<size_t>(B) * E;
  auto linear = [&](int weight, float* y, const float* in) { linear_forward(be, ws, params, weight, y, in, B); };

  embedding_forward(be, c, layout(), ws.embed, params.base, t, tokens, B);
  float* h = c.depth > 0 ? ws.blocks[0].h : ws.h_last;
  linear(kInputProj, h, x);
  for (int i = 0; i < c.depth; ++i) {
    MlpWorkspace::Block& blk = ws.blocks[i];
    float* h_next = i + 1 < c.depth ? ws.blocks[i + 1].h : ws.h_last;
    linear(block_param(i, kAda), blk.mod, ws.embed.se);
    be.adaln_forward(blk.m, blk.mean, blk.rstd, blk.h, blk.mod, B, W);
    linear(block_param(i, kFc1), blk.u, blk.m);
    be.silu_forward(blk.a, blk.u, BE);
    linear(block_param(i, kFc2), h_next, blk.a);
    be.add_inplace(h_next, blk.h, BW);
  }
  be.adaln_forward(ws.final_n, ws.final_mean, ws.final_rstd, ws.h_last, nullptr, B, W);
  linear(block_param(c.depth, 0), out, ws.final_n);
}

void MlpNet::backward(Backend& be, NetWorkspace& workspace, const NetParams& params, const NetGrads& grads,
                      const float* x, const int32_t* tokens, const float* dout, int B, float* dx) const {
  const NetConfig& c = config();
  MlpWorkspace& ws = dynamic_cast<MlpWorkspace&>(workspace);
  const int W = c.width, E = c.mlp_ratio * c.width;
  const size_t BW = static_cast<size_t>(B) * W, BE = static_cast<size_t>(B) * E;
  auto linear = [&](int weight, float* din, const float* dy, const float* in) {
    linear_backward(be, ws, params, grads, weight, din, dy, in, B);
  };
  // With a frozen base nothing upstream of the adaLN inputs se has a gradient to receive.
  const bool base_grads = grads.base != nullptr;

  // dh accumulates dL/dh through the residual stream; dse accumulates dL/d silu(e) over the blocks' adaLN.
  linear(block_param(c.depth, 0), ws.dm, dout, ws.final_n);
  be.fill(ws.dh, 0.0f, BW);
  be.adaln_backward(ws.dh, nullptr, ws.dm, ws.h_last, ws.final_mean, ws.final_rstd, nullptr, B, W);
  be.fill(ws.dse, 0.0f, BW);
  for (int i = c.depth - 1; i >= 0; --i) {
    MlpWorkspace::Block& blk = ws.blocks[i];
    linear(block_param(i, kFc2), ws.da, ws.dh, blk.a);
    be.silu_backward(ws.du, ws.da, blk.u, BE);
    linear(block_param(i, kFc1), ws.dm, ws.du, blk.m);
    be.adaln_backward(ws.dh, ws.dmod, ws.dm, blk.h, blk.mean, blk.rstd, blk.mod, B, W);
    linear(block_param(i, kAda), base_grads ? ws.dtmp : nullptr, ws.dmod, ws.embed.se);
    if (base_grads) be.add_inplace(ws.dse, ws.dtmp, BW);
  }
  linear(kInputProj, dx, ws.dh, x);
  if (base_grads) {
    embedding_backward(be, c, layout(), ws.embed, params.base, grads.base, tokens, ws.dse, B, ws.dm, ws.dtmp, ws.dh);
  }
}

}  // namespace dnft
