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

void DiT::forward(Backend& be, NetWorkspace& workspace, const float* params, const float* x, const float* t,
                  const int32_t* tokens, int B, float* out) const {
  const NetConfig& c = config();
  DitWorkspace& ws = dynamic_cast<DitWorkspace&>(workspace);
  ws.reserve(be, c, B);
  const Dims n(c, B);
  const int W = n.W, R = static_cast<int>(n.R);
  auto weight = [&](int index) { return param(params, index); };
  auto bias = [&](int index) { return param(params, index + 1); };

  embedding_forward(be, c, layout(), ws.embed, params, t, tokens, B);
  float* h = c.depth > 0 ? ws.blocks[0].h1 : ws.h_last;
  be.patchify(ws.tok_in, x, B, n.S, n.C, n.p);
  be.linear_forward(h, ws.tok_in, weight(kPatchEmbed), bias(kPatchEmbed), R, n.P, W);
  const size_t plane = static_cast<size_t>(n.T) * W;
  for (int b = 0; b < B; ++b) be.add_inplace(h + b * plane, ws.pos.get(), plane);

  for (int i = 0; i < c.depth; ++i) {
    DitWorkspace::Block& blk = ws.blocks[i];
    float* h_next = i + 1 < c.depth ? ws.blocks[i + 1].h1 : ws.h_last;
    const int ada = block_param(i, kAda);
    auto mod = [&](int part) { return blk.mod + part * W; };
    be.linear_forward(blk.mod, ws.embed.se, weight(ada), bias(ada), B, W, 6 * W);
    // Attention: h2 = h1 + gate·proj(attention(qkv(modulated norm(h1)))).
    be.modulated_norm_forward(blk.n1, blk.mean1, blk.rstd1, blk.h1, mod(kScaleAttn), mod(kShiftAttn), B, n.T, W, 6 * W);
    be.linear_forward(blk.qkv, blk.n1, weight(block_param(i, kQkv)), bias(block_param(i, kQkv)), R, W, 3 * W);
    be.attention_forward(blk.att, blk.probs, blk.qkv, B, n.T, n.H, n.d);
    be.linear_forward(blk.y1, blk.att, weight(block_param(i, kProj)), bias(block_param(i, kProj)), R, W, W);
    be.gated_residual_forward(blk.h2, blk.h1, blk.y1, mod(kGateAttn), B, n.T, W, 6 * W);
    // MLP: h_next = h2 + gate·fc2(gelu(fc1(modulated norm(h2)))).
    be.modulated_norm_forward(blk.n2, blk.mean2, blk.rstd2, blk.h2, mod(kScaleMlp), mod(kShiftMlp), B, n.T, W, 6 * W);
    be.linear_forward(blk.u, blk.n2, weight(block_param(i, kFc1)), bias(block_param(i, kFc1)), R, W, n.E);
    be.gelu_forward(blk.g, blk.u, n.R * n.E);
    be.linear_forward(blk.y2, blk.g, weight(block_param(i, kFc2)), bias(block_param(i, kFc2)), R, n.E, W);
    be.gated_residual_forward(h_next, blk.h2, blk.y2, mod(kGateMlp), B, n.T, W, 6 * W);
  }
  const int final_ada = block_param(c.depth, 0), final_linear = final_ada + 2;
  be.linear_forward(ws.final_mod, ws.embed.se, weight(final_ada), bias(final_ada), B, W, 2 * W);
  be.modulated_norm_forward(ws.final_n, ws.final_mean, ws.final_rstd, ws.h_last, ws.final_mod, ws.final_mod + W, B, n.T,
                            W, 2 * W);
  be.linear_forward(ws.tok_out, ws.final_n, weight(final_linear), bias(final_linear), R, W, n.P);
  be.unpatchify(out, ws.tok_out, B, n.S, n.C, n.p);
}

// x is not read: the forward kept its patches.
void DiT::backward(Backend& be, NetWorkspace& workspace, const float* params, float* grads, const float* /*x*/,
                   const int32_t* tokens, const float* dout, int B, float* dx) const {
  const NetConfig& c = config();
  DitWorkspace& ws = dynamic_cast<DitWorkspace&>(workspace);
  const Dims n(c, B);
  const int W = n.W, R = static_cast<int>(n.R);
  const size_t RW = n.R * W, BW = static_cast<size_t>(B) * W;
  auto weight = [&](int index) { return param(params, index); };
  auto gw = [&](int index) { return param(grads, index); };
  auto gb = [&](int index) { return param(grads, index + 1); };

  // Final layer. dh accumulates dL/dh through the residual stream; dse dL/dse over every ada linear.
  const int final_ada = block_param(c.depth, 0), final_linear = final_ada + 2;
  be.patchify(ws.dtok, dout, B, n.S, n.C, n.p);
  be.linear_backward(ws.dn, gw(final_linear), gb(final_linear), ws.dtok, ws.final_n, weight(final_linear), R, W, n.P);
  be.fill(ws.dh, 0.0f, RW);
  be.modulated_norm_backward(ws.dh, ws.dmod, ws.dmod + W, ws.dn, ws.h_last, ws.final_mean, ws.final_rstd, ws.final_mod,
                             B, n.T, W, 2 * W);
  be.linear_backward(ws.dse, gw(final_ada), gb(final_ada), ws.dmod, ws.embed.se, weight(final_ada), B, W, 2 * W);

  for (int i = c.depth - 1; i >= 0; --i) {
    DitWorkspace::Block& blk = ws.blocks[i];
    const int ada = block_param(i, kAda), qkv = block_param(i, kQkv), proj = block_param(i, kProj),
              fc1 = block_param(i, kFc1), fc2 = block_param(i, kFc2);
    auto mod = [&](int part) { return blk.mod + part * W; };
    auto dmod = [&](int part) { return ws.dmod + part * W; };
    // MLP branch (dh passes the residual unchanged).
    be.gated_residual_backward(ws.dy, dmod(kGateMlp), ws.dh, blk.y2, mod(kGateMlp), B, n.T, W, 6 * W);
    be.linear_backward(ws.dg, gw(fc2), gb(fc2), ws.dy, blk.g, weight(fc2), R, n.E, W);
    be.gelu_backward(ws.du, ws.dg, blk.u, n.R * n.E);
    be.linear_backward(ws.dn, gw(fc1), gb(fc1), ws.du, blk.n2, weight(fc1), R, W, n.E);
    be.modulated_norm_backward(ws.dh, dmod(kScaleMlp), dmod(kShiftMlp), ws.dn, blk.h2, blk.mean2, blk.rstd2,
                               mod(kScaleMlp), B, n.T, W, 6 * W);
    // Attention branch.
    be.gated_residual_backward(ws.dy, dmod(kGateAttn), ws.dh, blk.y1, mod(kGateAttn), B, n.T, W, 6 * W);
    be.linear_backward(ws.datt, gw(proj), gb(proj), ws.dy, blk.att, weight(proj), R, W, W);
    be.attention_backward(ws.dqkv, ws.datt, blk.qkv, blk.probs, B, n.T, n.H, n.d);
    be.linear_backward(ws.dn, gw(qkv), gb(qkv), ws.dqkv, blk.n1, weight(qkv), R, W, 3 * W);
    be.modulated_norm_backward(ws.dh, dmod(kScaleAttn), dmod(kShiftAttn), ws.dn, blk.h1, blk.mean1, blk.rstd1,
                               mod(kScaleAttn), B, n.T, W, 6 * W);
    be.linear_backward(ws.dtmp, gw(ada), gb(ada), ws.dmod, ws.embed.se, weight(ada), B, W, 6 * W);
    be.add_inplace(ws.dse, ws.dtmp, BW);
  }
  // The position embedding is constant: dh flows only into the patch embedding.
  be.linear_backward(dx != nullptr ? ws.dtok : nullptr, gw(kPatchEmbed), gb(kPatchEmbed), ws.dh, ws.tok_in,
                     weight(kPatchEmbed), R, n.P, W);
  if (dx != nullptr) be.unpatchify(dx, ws.dtok, B, n.S, n.C, n.p);
  embedding_backward(be, c, layout(), ws.embed, params, grads, tokens, ws.dse, B, ws.dn, ws.dy, ws.dtmp);
}

}  // namespace dnft
