#include "core/dit.h"

#include <cmath>

#include "core/embedding_net.h"

namespace dnft {

namespace {

// Indices into the layout of param_layout() (net_config.cpp), after the embedding's.
constexpr int kPatchEmbed = kEmbeddingParams, kFirstBlock = kPatchEmbed + 2, kParamsPerBlock = 10;
constexpr int kAda = 0, kQkv = 2, kProj = 4, kFc1 = 6, kFc2 = 8;
// Column offsets, in multiples of W, of the six parts of a block's ada output (B, 6W).
constexpr int kScaleAttn = 0, kShiftAttn = 1, kGateAttn = 2, kScaleMlp = 3, kShiftMlp = 4, kGateMlp = 5;

int block_param(int block, int which) { return kFirstBlock + block * kParamsPerBlock + which; }

struct Dims {
  int B, T, W, H, d, E, P, S, C, p;
  size_t R;  // token rows B·T
  Dims(const NetConfig& c, int batch)
      : B(batch),
        T((c.image_size / c.patch) * (c.image_size / c.patch)),
        W(c.width),
        H(c.heads),
        d(c.width / c.heads),
        E(c.mlp_ratio * c.width),
        P(c.patch * c.patch * c.channels),
        S(c.image_size),
        C(c.channels),
        p(c.patch),
        R(static_cast<size_t>(batch) * T) {}
};

class DitWorkspace final : public NetWorkspace {
 public:
  void reserve(Backend& backend, const NetConfig& c, int batch) {
    if (pos.empty()) {
      const std::vector<float> host = sincos_position_embedding(c.image_size / c.patch, c.width);
      pos = Buffer<float>(backend, host.size());
      pos.upload(host.data(), host.size());
    }
    if (batch <= capacity_) return;
    const Dims n(c, batch);
    const size_t B = batch, R = n.R, W = n.W, E = n.E, P = n.P, TT = static_cast<size_t>(n.T) * n.T;
    // carve_arena's sizing pass clears the pointers: no capacity until the new arena is carved (an allocation that
    // fails, e.g. out of GPU memory, must not leave the old capacity pointing nowhere), and the old arena goes first.
    capacity_ = 0;
    arena_ = Buffer<float>();
    arena_ = carve_arena(backend, [&](auto take) {
      embed.assign(take, c, B);
      tok_in = take(R * P);
      h_last = take(R * W);
      final_mean = take(R);
      final_rstd = take(R);
      final_mod = take(B * 2 * W);
      final_n = take(R * W);
      tok_out = take(R * P);
      blocks.assign(c.depth, Block{});
      for (Block& b : blocks) {
        b.mod = take(B * 6 * W);
        b.h1 = take(R * W);
        b.mean1 = take(R);
        b.rstd1 = take(R);
        b.n1 = take(R * W);
        b.qkv = take(R * 3 * W);
        b.probs = take(B * n.H * TT);
        b.att = take(R * W);
        b.y1 = take(R * W);
        b.h2 = take(R * W);
        b.mean2 = take(R);
        b.rstd2 = take(R);
        b.n2 = take(R * W);
        b.u = take(R * E);
        b.g = take(R * E);
        b.y2 = take(R * W);
      }
      dh = take(R * W);
      dn = take(R * W);
      dy = take(R * W);
      datt = take(R * W);
      dqkv = take(R * 3 * W);
      du = take(R * E);
      dg = take(R * E);
      dmod = take(B * 6 * W);
      dse = take(B * W);
      dtmp = take(B * W);
      dtok = take(R * P);
    });
    capacity_ = batch;
  }

  struct Block {
    float* mod;                 // (B, 6W) ada output: scale, shift, gate of attention, then of the MLP
    float *h1, *mean1, *rstd1;  // (R, W) block input, its layer-norm statistics (R)
    float* n1;                  // (R, W) modulated norm
    float* qkv;                 // (R, 3W)
    float* probs;               // (B, H, T, T)
    float* att;                 // (R, W) attention output, heads side by side
    float* y1;                  // (R, W) attn.proj output
    float *h2, *mean2, *rstd2;  // (R, W) h1 + gate·y1, its statistics
    float* n2;                  // (R, W)
    float *u, *g;               // (R, E) mlp.fc1 output and gelu(u)
    float* y2;                  // (R, W) mlp.fc2 output
  };
  EmbeddingActivations embed{};
  Buffer<float> pos;  // (T, W)
  float *tok_in = nullptr, *h_last = nullptr, *final_mean = nullptr, *final_rstd = nullptr, *final_mod = nullptr,
        *final_n = nullptr, *tok_out = nullptr;
  std::vector<Block> blocks;
  // backward scratch
  float *dh = nullptr, *dn = nullptr, *dy = nullptr, *datt = nullptr, *dqkv = nullptr, *du = nullptr, *dg = nullptr,
        *dmod = nullptr, *dse = nullptr, *dtmp = nullptr, *dtok = nullptr;

 private:
  Buffer<float> arena_;
  int capacity_ = 0;
};

}  // namespace

std::vector<float> sincos_position_embedding(int grid, int width) {
  // MAE / DiT: the first half encodes the column x, the second the row y, each as [sin(pos·ω_k), cos(pos·ω_k)]
  // with ω_k = 10000^(−k/Q), k < Q = W/4.
  const int Q = width / 4;
  std::vector<float> table(static_cast<size_t>(grid) * grid * width);
  for (int gy = 0; gy < grid; ++gy) {
    for (int gx = 0; gx < grid; ++gx) {
      float* row = table.data() + (static_cast<size_t>(gy) * grid + gx) * width;
      for (int k = 0; k < Q; ++k) {
        const double omega = std::pow(10000.0, -static_cast<double>(k) / Q);
        row[k] = static_cast<float>(std::sin(gx * omega));
        row[Q + k] = static_cast<float>(std::cos(gx * omega));
        row[2 * Q + k] = static_cast<float>(std::sin(gy * omega));
        row[3 * Q + k] = static_cast<float>(std::cos(gy * omega));
      }
    }
  }
  return table;
}

std::unique_ptr<NetWorkspace> DiT::make_workspace() const { return std::make_unique<DitWorkspace>(); }

void DiT::forward(Backend& be, NetWorkspace& workspace, const NetParams& params, const float* x, const float* t,
                  const int32_t* tokens, int B, float* out) const {
  const NetConfig& c = config();
  DitWorkspace& ws = dynamic_cast<DitWorkspace&>(workspace);
  ws.reserve(be, c, B);
  const Dims n(c, B);
  const int W = n.W, R = static_cast<int>(n.R);
  auto linear = [&](int weight, float* y, const float* in, int rows) {
    linear_forward(be, ws, params, weight, y, in, rows);
  };

  embedding_forward(be, c, layout(), ws.embed, params.base, t, tokens, B);
  float* h = c.depth > 0 ? ws.blocks[0].h1 : ws.h_last;
  be.patchify(ws.tok_in, x, B, n.S, n.C, n.p);
  linear(kPatchEmbed, h, ws.tok_in, R);
  const size_t plane = static_cast<size_t>(n.T) * W;
  for (int b = 0; b < B; ++b) be.add_inplace(h + b * plane, ws.pos.get(), plane);

  for (int i = 0; i < c.depth; ++i) {
    DitWorkspace::Block& blk = ws.blocks[i];
    float* h_next = i + 1 < c.depth ? ws.blocks[i + 1].h1 : ws.h_last;
    auto mod = [&](int part) { return blk.mod + part * W; };
    linear(block_param(i, kAda), blk.mod, ws.embed.se, B);
    // Attention: h2 = h1 + gate·proj(attention(qkv(modulated norm(h1)))).
    be.modulated_norm_forward(blk.n1, blk.mean1, blk.rstd1, blk.h1, mod(kScaleAttn), mod(kShiftAttn), B, n.T, W, 6 * W);
    linear(block_param(i, kQkv), blk.qkv, blk.n1, R);
    be.attention_forward(blk.att, blk.probs, blk.qkv, B, n.T, n.H, n.d);
    linear(block_param(i, kProj), blk.y1, blk.att, R);
    be.gated_residual_forward(blk.h2, blk.h1, blk.y1, mod(kGateAttn), B, n.T, W, 6 * W);
    // MLP: h_next = h2 + gate·fc2(gelu(fc1(modulated norm(h2)))).
    be.modulated_norm_forward(blk.n2, blk.mean2, blk.rstd2, blk.h2, mod(kScaleMlp), mod(kShiftMlp), B, n.T, W, 6 * W);
    linear(block_param(i, kFc1), blk.u, blk.n2, R);
    be.gelu_forward(blk.g, blk.u, n.R * n.E);
    linear(block_param(i, kFc2), blk.y2, blk.g, R);
    be.gated_residual_forward(h_next, blk.h2, blk.y2, mod(kGateMlp), B, n.T, W, 6 * W);
  }
  const int final_ada = block_param(c.depth, 0), final_linear = final_ada + 2;
  linear(final_ada, ws.final_mod, ws.embed.se, B);
  be.modulated_norm_forward(ws.final_n, ws.final_mean, ws.final_rstd, ws.h_last, ws.final_mod, ws.final_mod + W, B, n.T,
                            W, 2 * W);
  linear(final_linear, ws.tok_out, ws.final_n, R);
  be.unpatchify(out, ws.tok_out, B, n.S, n.C, n.p);
}

// x is not read: the forward kept its patches.
void DiT::backward(Backend& be, NetWorkspace& workspace, const NetParams& params, const NetGrads& grads,
                   const float* /*x*/, const int32_t* tokens, const float* dout, int B, float* dx) const {
  const NetConfig& c = config();
  DitWorkspace& ws = dynamic_cast<DitWorkspace&>(workspace);
  const Dims n(c, B);
  const int W = n.W, R = static_cast<int>(n.R);
  const size_t RW = n.R * W, BW = static_cast<size_t>(B) * W;
  auto linear = [&](int weight, float* din, const float* dy, const float* in, int rows) {
    linear_backward(be, ws, params, grads, weight, din, dy, in, rows);
  };
  // With a frozen base nothing upstream of the adaLN inputs se has a gradient to receive.
  const bool base_grads = grads.base != nullptr;

  // Final layer. dh accumulates dL/dh through the residual stream; dse dL/dse over every ada linear.
  const int final_ada = block_param(c.depth, 0), final_linear = final_ada + 2;
  be.patchify(ws.dtok, dout, B, n.S, n.C, n.p);
  linear(final_linear, ws.dn, ws.dtok, ws.final_n, R);
  be.fill(ws.dh, 0.0f, RW);
  be.modulated_norm_backward(ws.dh, ws.dmod, ws.dmod + W, ws.dn, ws.h_last, ws.final_mean, ws.final_rstd, ws.final_mod,
                             B, n.T, W, 2 * W);
  linear(final_ada, base_grads ? ws.dse : nullptr, ws.dmod, ws.embed.se, B);

  for (int i = c.depth - 1; i >= 0; --i) {
    DitWorkspace::Block& blk = ws.blocks[i];
    auto mod = [&](int part) { return blk.mod + part * W; };
    auto dmod = [&](int part) { return ws.dmod + part * W; };
    // MLP branch (dh passes the residual unchanged).
    be.gated_residual_backward(ws.dy, dmod(kGateMlp), ws.dh, blk.y2, mod(kGateMlp), B, n.T, W, 6 * W);
    linear(block_param(i, kFc2), ws.dg, ws.dy, blk.g, R);
    be.gelu_backward(ws.du, ws.dg, blk.u, n.R * n.E);
    linear(block_param(i, kFc1), ws.dn, ws.du, blk.n2, R);
    be.modulated_norm_backward(ws.dh, dmod(kScaleMlp), dmod(kShiftMlp), ws.dn, blk.h2, blk.mean2, blk.rstd2,
                               mod(kScaleMlp), B, n.T, W, 6 * W);
    // Attention branch.
    be.gated_residual_backward(ws.dy, dmod(kGateAttn), ws.dh, blk.y1, mod(kGateAttn), B, n.T, W, 6 * W);
    linear(block_param(i, kProj), ws.datt, ws.dy, blk.att, R);
    be.attention_backward(ws.dqkv, ws.datt, blk.qkv, blk.probs, B, n.T, n.H, n.d);
    linear(block_param(i, kQkv), ws.dn, ws.dqkv, blk.n1, R);
    be.modulated_norm_backward(ws.dh, dmod(kScaleAttn), dmod(kShiftAttn), ws.dn, blk.h1, blk.mean1, blk.rstd1,
                               mod(kScaleAttn), B, n.T, W, 6 * W);
    linear(block_param(i, kAda), base_grads ? ws.dtmp : nullptr, ws.dmod, ws.embed.se, B);
    if (base_grads) be.add_inplace(ws.dse, ws.dtmp, BW);
  }
  // The position embedding is constant: dh flows only into the patch embedding.
  linear(kPatchEmbed, dx != nullptr ? ws.dtok : nullptr, ws.dh, ws.tok_in, R);
  if (dx != nullptr) be.unpatchify(dx, ws.dtok, B, n.S, n.C, n.p);
  if (base_grads) {
    embedding_backward(be, c, layout(), ws.embed, params.base, grads.base, tokens, ws.dse, B, ws.dn, ws.dy, ws.dtmp);
  }
}

}  // namespace dnft
