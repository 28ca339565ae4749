// CPU vs CUDA parity (built only when CUDA is on): every Backend op on random inputs with odd sizes, outputs
// poisoned with NaN before the call, compared by ‖gpu − cpu‖/‖cpu‖; then whole flow-matching, DiffusionNFT,
// FlowGRPO, AWM and DGPO steps and rollouts of a Model on each backend from the same seed. Runs in both GEMM
// precisions. Without a CUDA device it prints one line saying it ran nothing and exits 0 (no "N passed" line, so CI
// counts nothing).
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/device.h"
#include "core/model.h"
#include "tests/check.h"
#include "tests/options.h"

using namespace dnft;

namespace {

std::mt19937 rng(20261123);

std::vector<float> random_vec(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> uni(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = uni(rng);
  return v;
}

std::vector<int32_t> random_tokens(size_t n, int V) {
  std::uniform_int_distribution<int32_t> uni(0, V - 1);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = uni(rng);
  return v;
}

double rel_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    err += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  if (!std::isfinite(err)) return INFINITY;
  return norm > 0 ? std::sqrt(err / norm) : std::sqrt(err);
}

double rel_error(double got, double ref) { return std::fabs(got - ref) / std::max(std::fabs(ref), 1e-30); }

// The GPU under test and its tolerances: elementwise math (FP32 on both sides, device vs host libm), and the
// GEMM-based results, FP32 (summation order only) or TF32 (10-bit mantissa inputs).
struct Setup {
  Precision precision;
  std::unique_ptr<Backend> gpu;
  double tol_elem = 2e-6;
  double tol_gemm;
  double tol_step;
};
Setup* setup = nullptr;

Backend& cpu() { return cpu_backend(); }
Backend& gpu() { return *setup->gpu; }

// The same values on both backends.
template <typename T>
struct Twin {
  Buffer<T> c, g;
  size_t n;
  Twin(const std::vector<T>& host) : c(cpu(), host.size()), g(gpu(), host.size()), n(host.size()) {
    c.upload(host.data(), n);
    g.upload(host.data(), n);
  }
};

// An output on both backends, poisoned with NaN so that an element the kernel forgets shows up.
struct Out {
  Buffer<float> c, g;
  size_t n;
  explicit Out(size_t count) : c(cpu(), count), g(gpu(), count), n(count) {
    cpu().fill(c.get(), NAN, n);
    gpu().fill(g.get(), NAN, n);
  }
  // An output that accumulates (+=): both start from the same values.
  Out(size_t count, const std::vector<float>& init) : Out(count) {
    c.upload(init.data(), n);
    g.upload(init.data(), n);
  }
};

void expect_close(const char* what, const Out& out, double tol) {
  std::vector<float> c(out.n), g(out.n);
  out.c.download(c.data(), out.n);
  out.g.download(g.data(), out.n);
  const double err = rel_error(g, c);
  CHECK(err <= tol, "%s: relative error %.3g > %.3g", what, err, tol);
}

void expect_close(const char* what, double got, double ref, double tol) {
  const double err = rel_error(got, ref);
  CHECK(err <= tol, "%s: %.10g vs %.10g (relative %.3g > %.3g)", what, got, ref, err, tol);
}

void philox_fills() {
  for (size_t n : {size_t{1}, size_t{4099}, (size_t{1} << 20) + 3}) {
    Out normal(n), uniform(n);
    cpu().fill_normal(normal.c.get(), n, 99, 16, (uint64_t{1} << 40) + 5, 0.7f);
    gpu().fill_normal(normal.g.get(), n, 99, 16, (uint64_t{1} << 40) + 5, 0.7f);
    cpu().fill_uniform(uniform.c.get(), n, 99, 17, 3, -2.0f, 3.0f);
    gpu().fill_uniform(uniform.g.get(), n, 99, 17, 3, -2.0f, 3.0f);
    expect_close("fill_normal", normal, setup->tol_elem);
    expect_close("fill_uniform", uniform, 1e-7);
  }
}

void linear_layers() {
  struct Shape {
    int B, K, N;
  };
  for (const Shape s : {Shape{1, 1, 1}, Shape{37, 19, 45}, Shape{129, 67, 33}, Shape{250, 130, 7}}) {
    const size_t BK = static_cast<size_t>(s.B) * s.K, BN = static_cast<size_t>(s.B) * s.N,
                 NK = static_cast<size_t>(s.N) * s.K;
    Twin<float> in(random_vec(BK)), w(random_vec(NK)), b(random_vec(s.N)), dout(random_vec(BN));
    for (bool bias : {true, false}) {
      Out out(BN);
      cpu().linear_forward(out.c.get(), in.c.get(), w.c.get(), bias ? b.c.get() : nullptr, s.B, s.K, s.N);
      gpu().linear_forward(out.g.get(), in.g.get(), w.g.get(), bias ? b.g.get() : nullptr, s.B, s.K, s.N);
      expect_close("linear_forward", out, setup->tol_gemm);
    }
    for (bool with_din : {true, false}) {
      const std::vector<float> dw0 = random_vec(NK), db0 = random_vec(s.N);
      Out din(BK), dw(NK, dw0), db(s.N, db0);
      cpu().linear_backward(with_din ? din.c.get() : nullptr, dw.c.get(), db.c.get(), dout.c.get(), in.c.get(),
                            w.c.get(), s.B, s.K, s.N);
      gpu().linear_backward(with_din ? din.g.get() : nullptr, dw.g.get(), db.g.get(), dout.g.get(), in.g.get(),
                            w.g.get(), s.B, s.K, s.N);
      if (with_din) expect_close("linear_backward din", din, setup->tol_gemm);
      expect_close("linear_backward dw (+=)", dw, setup->tol_gemm);
      expect_close("linear_backward db (+=)", db, setup->tol_elem);
    }
    Out din_alone(BK);  // dw and db null: a frozen layer
    cpu().linear_backward(din_alone.c.get(), nullptr, nullptr, dout.c.get(), in.c.get(), w.c.get(), s.B, s.K, s.N);
    gpu().linear_backward(din_alone.g.get(), nullptr, nullptr, dout.g.get(), in.g.get(), w.g.get(), s.B, s.K, s.N);
    expect_close("linear_backward din alone", din_alone, setup->tol_gemm);
  }
}

void activations_and_elementwise() {
  const size_t n = 12347;
  Twin<float> x(random_vec(n, -6, 6)), y(random_vec(n)), z(random_vec(n)), dy(random_vec(n));
  Out silu(n), dsilu(n), sum(n, random_vec(n)), two(n), three(n), filled(n);
  cpu().silu_forward(silu.c.get(), x.c.get(), n);
  gpu().silu_forward(silu.g.get(), x.g.get(), n);
  cpu().silu_backward(dsilu.c.get(), dy.c.get(), x.c.get(), n);
  gpu().silu_backward(dsilu.g.get(), dy.g.get(), x.g.get(), n);
  cpu().add_inplace(sum.c.get(), x.c.get(), n);
  gpu().add_inplace(sum.g.get(), x.g.get(), n);
  cpu().lincomb(two.c.get(), n, 0.3f, x.c.get(), -1.7f, y.c.get(), 0.0f, nullptr);
  gpu().lincomb(two.g.get(), n, 0.3f, x.g.get(), -1.7f, y.g.get(), 0.0f, nullptr);
  cpu().lincomb(three.c.get(), n, 0.3f, x.c.get(), -1.7f, y.c.get(), 2.5f, z.c.get());
  gpu().lincomb(three.g.get(), n, 0.3f, x.g.get(), -1.7f, y.g.get(), 2.5f, z.g.get());
  cpu().fill(filled.c.get(), 0.25f, n);
  gpu().fill(filled.g.get(), 0.25f, n);
  expect_close("silu_forward", silu, setup->tol_elem);
  expect_close("silu_backward", dsilu, setup->tol_elem);
  expect_close("add_inplace", sum, setup->tol_elem);
  expect_close("lincomb (2 terms)", two, setup->tol_elem);
  expect_close("lincomb (3 terms)", three, setup->tol_elem);
  expect_close("fill", filled, 0.0);
  // In place: out = x.
  Out inplace(n, random_vec(n));
  cpu().lincomb(inplace.c.get(), n, 0.5f, inplace.c.get(), 2.0f, y.c.get(), 0.0f, nullptr);
  gpu().lincomb(inplace.g.get(), n, 0.5f, inplace.g.get(), 2.0f, y.g.get(), 0.0f, nullptr);
  expect_close("lincomb in place", inplace, setup->tol_elem);
}

void embeddings() {
  const int B = 37, F = 34, L = 3, V = 11, W = 45;
  Twin<float> t(random_vec(B, 0.0f, 1.0f)), table(random_vec(static_cast<size_t>(L) * V * W)),
      dout(random_vec(static_cast<size_t>(B) * W));
  Twin<int32_t> tokens(random_tokens(static_cast<size_t>(B) * L, V));
  Out tf(static_cast<size_t>(B) * F), ce(static_cast<size_t>(B) * W),
      dtable(static_cast<size_t>(L) * V * W, random_vec(static_cast<size_t>(L) * V * W));
  cpu().time_features(tf.c.get(), t.c.get(), B, F);
  gpu().time_features(tf.g.get(), t.g.get(), B, F);
  cpu().cond_embed_forward(ce.c.get(), tokens.c.get(), table.c.get(), B, L, V, W);
  gpu().cond_embed_forward(ce.g.get(), tokens.g.get(), table.g.get(), B, L, V, W);
  cpu().cond_embed_backward(dtable.c.get(), dout.c.get(), tokens.c.get(), B, L, V, W);
  gpu().cond_embed_backward(dtable.g.get(), dout.g.get(), tokens.g.get(), B, L, V, W);
  // Arguments up to 1000 rad: a few ulps of the argument are ~1e-5 of the result.
  expect_close("time_features", tf, 1e-4);
  expect_close("cond_embed_forward", ce, setup->tol_elem);
  expect_close("cond_embed_backward (+=)", dtable, setup->tol_elem);
}

void adaln() {
  for (int W : {1, 45, 300}) {
    const int B = 37;
    const size_t BW = static_cast<size_t>(B) * W;
    Twin<float> in(random_vec(BW, -2, 3)), mod(random_vec(2 * BW)), dout(random_vec(BW));
    for (bool modulated : {true, false}) {
      Out out(BW), mean(B), rstd(B);
      const float* mc = modulated ? mod.c.get() : nullptr;
      const float* mg = modulated ? mod.g.get() : nullptr;
      cpu().adaln_forward(out.c.get(), mean.c.get(), rstd.c.get(), in.c.get(), mc, B, W);
      gpu().adaln_forward(out.g.get(), mean.g.get(), rstd.g.get(), in.g.get(), mg, B, W);
      expect_close("adaln_forward", out, 1e-5);
      expect_close("adaln_forward mean", mean, setup->tol_elem);
      expect_close("adaln_forward rstd", rstd, 1e-5);
      // The backward from the CPU's saved statistics on both sides.
      std::vector<float> host_mean(B), host_rstd(B);
      mean.c.download(host_mean.data(), B);
      rstd.c.download(host_rstd.data(), B);
      Twin<float> saved_mean(host_mean), saved_rstd(host_rstd);
      Out din(BW, random_vec(BW)), dmod(2 * BW);
      cpu().adaln_backward(din.c.get(), modulated ? dmod.c.get() : nullptr, dout.c.get(), in.c.get(),
                           saved_mean.c.get(), saved_rstd.c.get(), mc, B, W);
      gpu().adaln_backward(din.g.get(), modulated ? dmod.g.get() : nullptr, dout.g.get(), in.g.get(),
                           saved_mean.g.get(), saved_rstd.g.get(), mg, B, W);
      expect_close("adaln_backward din (+=)", din, 1e-5);
      if (modulated) expect_close("adaln_backward dmod", dmod, setup->tol_elem);
    }
  }
}

// Modulated norm with scale and shift at offsets W and 2W of each sample's 6W-wide modulation row.
// The modulation gradients fill W of each sample's 6W-wide row: the rest keeps the same values on both sides.
void modulated_norm_parity(int B, int T, int W) {
  const int stride = 6 * W;
  const size_t BTW = static_cast<size_t>(B) * T * W, BT = static_cast<size_t>(B) * T;
  const size_t mod_size = static_cast<size_t>(B) * stride;
  Twin<float> x(random_vec(BTW, -4, 4)), dy(random_vec(BTW)), mod(random_vec(mod_size));
  Out norm(BTW), mean(BT), rstd(BT), din(BTW, random_vec(BTW)), dscale(mod_size, random_vec(mod_size)),
      dshift(mod_size, random_vec(mod_size));
  cpu().modulated_norm_forward(norm.c.get(), mean.c.get(), rstd.c.get(), x.c.get(), mod.c.get() + W,
                               mod.c.get() + 2 * W, B, T, W, stride);
  gpu().modulated_norm_forward(norm.g.get(), mean.g.get(), rstd.g.get(), x.g.get(), mod.g.get() + W,
                               mod.g.get() + 2 * W, B, T, W, stride);
  expect_close("modulated_norm_forward", norm, 1e-5);
  cpu().modulated_norm_backward(din.c.get(), dscale.c.get(), dshift.c.get(), dy.c.get(), x.c.get(), mean.c.get(),
                                rstd.c.get(), mod.c.get() + W, B, T, W, stride);
  gpu().modulated_norm_backward(din.g.get(), dscale.g.get(), dshift.g.get(), dy.g.get(), x.g.get(), mean.g.get(),
                                rstd.g.get(), mod.g.get() + W, B, T, W, stride);
  expect_close("modulated_norm_backward din (+=)", din, 1e-5);
  expect_close("modulated_norm_backward dscale", dscale, 1e-5);
  expect_close("modulated_norm_backward dshift", dshift, setup->tol_elem);
}

void attention_parity(int B, int T, int H, int d) {
  const size_t BTW = static_cast<size_t>(B) * T * H * d;
  Twin<float> qkv(random_vec(3 * BTW)), dy(random_vec(BTW));
  Out att(BTW), probs(static_cast<size_t>(B) * H * T * T), datt(3 * BTW);
  cpu().attention_forward(att.c.get(), probs.c.get(), qkv.c.get(), B, T, H, d);
  gpu().attention_forward(att.g.get(), probs.g.get(), qkv.g.get(), B, T, H, d);
  expect_close("attention_forward", att, setup->tol_gemm);
  expect_close("attention probabilities", probs, setup->tol_gemm);
  cpu().attention_backward(datt.c.get(), dy.c.get(), qkv.c.get(), probs.c.get(), B, T, H, d);
  gpu().attention_backward(datt.g.get(), dy.g.get(), qkv.g.get(), probs.g.get(), B, T, H, d);
  expect_close("attention_backward", datt, setup->tol_gemm);
}

// The row kernels' blocks fit the row (native/cuda/launch.h, row_threads): rows that take each block size from a
// warp to the largest, and rows longer than the largest block, which loop over it.
void row_kernels_at_every_block_size() {
  for (const int W : {200, 300, 1100}) modulated_norm_parity(2, 3, W);
  for (const int T : {33, 100, 300}) attention_parity(1, T, 2, T == 300 ? 300 : 37);
}

// The DiT's ops on odd sizes: 7 tokens of width 15 (3 heads of 5), 5 samples.
void dit_ops() {
  const int B = 5, T = 7, H = 3, d = 5, W = H * d, stride = 6 * W;
  const size_t BTW = static_cast<size_t>(B) * T * W, mod_size = static_cast<size_t>(B) * stride;
  Twin<float> x(random_vec(BTW, -4, 4)), dy(random_vec(BTW)), mod(random_vec(mod_size)), y(random_vec(BTW));
  Out gelu(BTW), dgelu(BTW);
  cpu().gelu_forward(gelu.c.get(), x.c.get(), BTW);
  gpu().gelu_forward(gelu.g.get(), x.g.get(), BTW);
  cpu().gelu_backward(dgelu.c.get(), dy.c.get(), x.c.get(), BTW);
  gpu().gelu_backward(dgelu.g.get(), dy.g.get(), x.g.get(), BTW);
  expect_close("gelu_forward", gelu, setup->tol_elem);
  expect_close("gelu_backward", dgelu, setup->tol_elem);

  modulated_norm_parity(B, T, W);

  Out res(BTW), dres(BTW), dgate(mod_size, random_vec(mod_size));
  cpu().gated_residual_forward(res.c.get(), x.c.get(), y.c.get(), mod.c.get(), B, T, W, stride);
  gpu().gated_residual_forward(res.g.get(), x.g.get(), y.g.get(), mod.g.get(), B, T, W, stride);
  cpu().gated_residual_backward(dres.c.get(), dgate.c.get(), dy.c.get(), y.c.get(), mod.c.get(), B, T, W, stride);
  gpu().gated_residual_backward(dres.g.get(), dgate.g.get(), dy.g.get(), y.g.get(), mod.g.get(), B, T, W, stride);
  expect_close("gated_residual_forward", res, setup->tol_elem);
  expect_close("gated_residual_backward dy", dres, setup->tol_elem);
  expect_close("gated_residual_backward dgate", dgate, setup->tol_elem);

  attention_parity(B, T, H, d);

  // 6×6 images of 3 channels in patches of 2: 9 tokens of 12 values.
  const int S = 6, C = 3, p = 2;
  const size_t n = static_cast<size_t>(B) * S * S * C;
  Twin<float> images(random_vec(n));
  Out tokens(n), back(n);
  cpu().patchify(tokens.c.get(), images.c.get(), B, S, C, p);
  gpu().patchify(tokens.g.get(), images.g.get(), B, S, C, p);
  cpu().unpatchify(back.c.get(), tokens.c.get(), B, S, C, p);
  gpu().unpatchify(back.g.get(), tokens.g.get(), B, S, C, p);
  expect_close("patchify", tokens, 0.0);
  expect_close("unpatchify", back, 0.0);
}

void flow_matching_pieces() {
  const int B = 37, D = 13;
  const size_t n = static_cast<size_t>(B) * D;
  Twin<float> x0(random_vec(n)), t(random_vec(B, 0.01f, 1.0f));
  Out xt(n), target(n), dpred(n);
  cpu().interpolate(xt.c.get(), target.c.get(), x0.c.get(), t.c.get(), B, D, 5, uint64_t{7} << 32);
  gpu().interpolate(xt.g.get(), target.g.get(), x0.g.get(), t.g.get(), B, D, 5, uint64_t{7} << 32);
  expect_close("interpolate x_t", xt, setup->tol_elem);
  expect_close("interpolate target", target, setup->tol_elem);
  const double lc = cpu().mse_loss(dpred.c.get(), xt.c.get(), target.c.get(), n, 0.5f);
  const double lg = gpu().mse_loss(dpred.g.get(), xt.g.get(), target.g.get(), n, 0.5f);
  expect_close("mse_loss value", lg, lc, 1e-5);
  expect_close("mse_loss gradient", dpred, 1e-5);
  // Many blocks: the multi-block partial sums.
  const size_t big = (size_t{1} << 21) + 17;
  Twin<float> a(random_vec(big)), b(random_vec(big));
  Out grad(big);
  expect_close("mse_loss (2M elements)", gpu().mse_loss(grad.g.get(), a.g.get(), b.g.get(), big, 1.0f),
               cpu().mse_loss(grad.c.get(), a.c.get(), b.c.get(), big, 1.0f), 1e-9);
}

void nft_loss_variants() {
  const int B = 37, D = 13;
  const size_t n = static_cast<size_t>(B) * D;
  Twin<float> vt(random_vec(n)), vo(random_vec(n)), vr(random_vec(n)), target(random_vec(n)),
      t(random_vec(B, 0.02f, 1.0f)), r(random_vec(B, 0.0f, 1.0f));
  for (int variant = 0; variant < 8; ++variant) {
    NftLossParams p = test::nft_loss_params();
    p.beta = 0.7f;
    p.adaptive = variant & 1;
    p.positive_only = variant & 2;
    p.kl_coef = variant & 4 ? 0.3f : 0.0f;
    Out dv(n);
    const double lc = cpu().nft_loss(dv.c.get(), vt.c.get(), vo.c.get(), vr.c.get(), target.c.get(), t.c.get(),
                                     r.c.get(), B, D, p, 0.5f);
    const double lg = gpu().nft_loss(dv.g.get(), vt.g.get(), vo.g.get(), vr.g.get(), target.g.get(), t.g.get(),
                                     r.g.get(), B, D, p, 0.5f);
    const std::string what = "nft_loss variant " + std::to_string(variant);
    expect_close(what.c_str(), lg, lc, 1e-6);
    expect_close((what + " gradient").c_str(), dv, 1e-5);
  }
}

void awm_loss_variants() {
  const int B = 37, D = 13;
  const size_t n = static_cast<size_t>(B) * D;
  Twin<float> vt(random_vec(n)), vr(random_vec(n)), ve(random_vec(n)), target(random_vec(n)),
      t(random_vec(B, 0.02f, 1.0f)), adv(random_vec(B, -1.0f, 1.0f));
  for (int weighting = 0; weighting < 5; ++weighting) {
    for (bool penalties : {false, true}) {
      AwmLossParams p;
      p.weighting = static_cast<AwmWeighting>(weighting);
      p.power = 0.25f;
      p.kl_coef = penalties ? 0.3f : 0.0f;
      p.ema_coef = penalties ? 0.7f : 0.0f;
      Out dv(n);
      AwmStats sc, sg;
      const double lc = cpu().awm_loss(dv.c.get(), vt.c.get(), vr.c.get(), ve.c.get(), target.c.get(), t.c.get(),
                                       adv.c.get(), B, D, p, 0.5f, &sc);
      const double lg = gpu().awm_loss(dv.g.get(), vt.g.get(), vr.g.get(), ve.g.get(), target.g.get(), t.g.get(),
                                       adv.g.get(), B, D, p, 0.5f, &sg);
      const std::string what = "awm_loss weighting " + std::to_string(weighting) + (penalties ? " + KL" : "");
      expect_close(what.c_str(), lg, lc, 1e-6);
      expect_close((what + " log q").c_str(), sg.log_q, sc.log_q, 1e-6);
      expect_close((what + " gradient").c_str(), dv, 1e-5);
    }
  }
}

void dgpo_pieces() {
  const int B = 37, D = 13;
  const size_t n = static_cast<size_t>(B) * D;
  Twin<float> vt(random_vec(n)), vr(random_vec(n)), target(random_vec(n)), weight(random_vec(B, -2.0f, 2.0f)),
      keep(random_vec(B, 0.0f, 1.0f));
  for (float kl : {0.0f, 0.3f}) {
    Out dv(n);
    const double lc = cpu().dgpo_loss(dv.c.get(), vt.c.get(), vr.c.get(), target.c.get(), weight.c.get(), keep.c.get(),
                                      B, D, kl, 0.5f);
    const double lg = gpu().dgpo_loss(dv.g.get(), vt.g.get(), vr.g.get(), target.g.get(), weight.g.get(), keep.g.get(),
                                      B, D, kl, 0.5f);
    expect_close("dgpo_loss", lg, lc, 1e-6);
    expect_close("dgpo_loss gradient", dv, 1e-5);
  }
  std::vector<double> rc(B), rg(B);
  cpu().row_mean_sq(rc.data(), vt.c.get(), target.c.get(), B, D);
  gpu().row_mean_sq(rg.data(), vt.g.get(), target.g.get(), B, D);
  for (int b = 0; b < B; ++b) expect_close("row_mean_sq", rg[b], rc[b], 1e-12);
}

void sde_pieces() {
  const int R = 37, D = 13;
  const size_t n = static_cast<size_t>(R) * D;
  Twin<float> x(random_vec(n)), xn(random_vec(n)), mean(random_vec(n)), vt(random_vec(n)), vr(random_vec(n)),
      adv(random_vec(R, -2, 2));
  for (bool cps : {false, true}) {
    for (bool sum : {false, true}) {
      Out logp(R);
      cpu().sde_logp(logp.c.get(), xn.c.get(), mean.c.get(), 0.3f, R, D, sum, cps);
      gpu().sde_logp(logp.g.get(), xn.g.get(), mean.g.get(), 0.3f, R, D, sum, cps);
      expect_close(cps ? "sde_logp (CPS)" : "sde_logp", logp, 1e-6);
    }
  }
  // Row r steps from t to t_next, FlowGRPO's SDE or CPS.
  auto rows_of = [&](SdeKind kind) {
    std::vector<SdeRow> rows(R);
    for (int r = 0; r < R; ++r) {
      const double t = 1.0 - r / (R + 1.0), t_next = 1.0 - (r + 1) / (R + 1.0);
      rows[r] = sde_row(step_coefficients(kind, t, t_next, 0.7, 1.0 - 1 / (R + 1.0)), t_next - t);
    }
    return rows;
  };
  for (int variant = 0; variant < 8; ++variant) {
    GrpoParams p = test::grpo_params();
    p.clip_range = 0.2f;
    p.kl_coef = variant & 1 ? 0.05f : 0.0f;
    p.logp_sum = variant & 2;
    p.cps = variant & 4;
    const std::vector<SdeRow> rows = rows_of(p.cps ? SdeKind::kCps : SdeKind::kFlowGrpo);
    Twin<SdeRow> coefs(rows);
    // log p_old near each row's current log p, so that some rows clip and some do not (away from the boundary).
    std::vector<float> host_x(n), host_xn(n), host_v(n), old(R);
    x.c.download(host_x.data(), n);
    xn.c.download(host_xn.data(), n);
    vt.c.download(host_v.data(), n);
    for (int r = 0; r < R; ++r) {
      const SdeRow& c = rows[r];
      double acc = 0;
      for (int d = 0; d < D; ++d) {
        const size_t i = static_cast<size_t>(r) * D + d;
        acc += step_logp(host_xn[i], sde_mean(host_x[i], host_v[i], c.x_coef, c.v_coef), c.std, p.cps);
      }
      old[r] = sde_row_logp(acc, D, p.logp_sum) + (r % 3 == 0 ? 0.5f : 0.01f) * (r % 2 ? 1.0f : -1.0f);
    }
    Twin<float> logp_old(old);
    Out dv(n);
    GrpoStats sc, sg;
    const double lc = cpu().grpo_loss(dv.c.get(), vt.c.get(), vr.c.get(), x.c.get(), xn.c.get(), coefs.c.get(),
                                      adv.c.get(), logp_old.c.get(), R, D, p, 0.5f, &sc);
    const double lg = gpu().grpo_loss(dv.g.get(), vt.g.get(), vr.g.get(), x.g.get(), xn.g.get(), coefs.g.get(),
                                      adv.g.get(), logp_old.g.get(), R, D, p, 0.5f, &sg);
    const std::string what = "grpo_loss variant " + std::to_string(variant);
    expect_close(what.c_str(), lg, lc, 1e-5);
    expect_close((what + " gradient").c_str(), dv, 1e-5);
    CHECK(sc.clipped == sg.clipped, "%s clipped rows %g vs %g", what.c_str(), sg.clipped, sc.clipped);
    expect_close((what + " ratio sum").c_str(), sg.ratio_sum, sc.ratio_sum, 1e-6);
  }
  // GRPO-Guard: the step means of the rollout policy are v_ref's, log p_old is theirs shifted so that some rows clip.
  const std::vector<SdeRow> rows = rows_of(SdeKind::kFlowGrpo);
  Twin<SdeRow> coefs(rows);
  std::vector<float> host_x(n), host_xn(n), host_vr(n), host_mean_old(n);
  std::vector<double> acc(R);
  x.c.download(host_x.data(), n);
  xn.c.download(host_xn.data(), n);
  vr.c.download(host_vr.data(), n);
  for (int r = 0; r < R; ++r) {
    for (int d = 0; d < D; ++d) {
      const size_t i = static_cast<size_t>(r) * D + d;
      host_mean_old[i] = sde_mean(host_x[i], host_vr[i], rows[r].x_coef, rows[r].v_coef);
      acc[r] += gaussian_logp(host_xn[i], host_mean_old[i], rows[r].std);
    }
  }
  Twin<float> mean_old(host_mean_old);
  for (bool sum : {false, true}) {
    std::vector<float> old(R);
    for (int r = 0; r < R; ++r) old[r] = sde_row_logp(acc[r], D, sum) + (r % 3 == 0 ? 0.5f : 0.0f);
    Twin<float> logp_old(old);
    GrpoParams p = test::grpo_params();
    p.clip_range = 0.05f;
    p.logp_sum = sum;
    Out dv(n);
    GrpoStats sc, sg;
    const double lc = cpu().guard_loss(dv.c.get(), vt.c.get(), x.c.get(), xn.c.get(), mean_old.c.get(), coefs.c.get(),
                                       adv.c.get(), logp_old.c.get(), R, D, p, 0.5f, &sc);
    const double lg = gpu().guard_loss(dv.g.get(), vt.g.get(), x.g.get(), xn.g.get(), mean_old.g.get(), coefs.g.get(),
                                       adv.g.get(), logp_old.g.get(), R, D, p, 0.5f, &sg);
    const std::string what = sum ? "guard_loss (sum)" : "guard_loss";
    expect_close(what.c_str(), lg, lc, 1e-5);
    expect_close((what + " gradient").c_str(), dv, 1e-5);
    CHECK(sc.clipped == sg.clipped, "%s clipped rows %g vs %g", what.c_str(), sg.clipped, sc.clipped);
    // The sum over D multiplies the log-ratio by D: every row clips then, so only the mean checks both sides.
    if (!sum) CHECK(sc.clipped > 0 && sc.clipped < R, "%s: %g of %d rows clipped", what.c_str(), sc.clipped, R);
    expect_close((what + " ratio sum").c_str(), sg.ratio_sum, sc.ratio_sum, 1e-6);
  }
}

void optimizer_pieces() {
  const size_t n = (size_t{1} << 20) + 5;
  Twin<float> x(random_vec(n));
  const double sc = cpu().sum_squares(x.c.get(), n), sg = gpu().sum_squares(x.g.get(), n);
  expect_close("sum_squares", sg, sc, 1e-12);
  CHECK(gpu().sum_squares(x.g.get(), n) == sg, "sum_squares is not reproducible on the GPU");
  const size_t m = 4099;
  const std::vector<float> p0 = random_vec(m), m0 = random_vec(m), v0 = random_vec(m, 0.0f, 1.0f);
  Twin<float> grad(random_vec(m));
  Out p(m, p0), mm(m, m0), vv(m, v0);
  const AdamWStep s{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f - 0.9f * 0.9f, 1.0f - 0.999f * 0.999f, 0.7f};
  cpu().adamw(p.c.get(), mm.c.get(), vv.c.get(), grad.c.get(), m, s);
  // The GPU leaves the squared sums to the next step's check (cuda/optimizer.cu).
  CHECK(!gpu().adamw(p.g.get(), mm.g.get(), vv.g.get(), grad.g.get(), m, s), "the GPU's adamw returned squared sums");
  expect_close("adamw param", p, setup->tol_elem);
  expect_close("adamw m", mm, setup->tol_elem);
  expect_close("adamw v", vv, setup->tol_elem);
}

void memory_and_errors() {
  // Round trips and device-to-device copies.
  const std::vector<float> host = random_vec(1001);
  Buffer<float> a(gpu(), host.size()), b(gpu(), host.size());
  a.upload(host.data(), host.size());
  gpu().copy(b.get(), a.get(), host.size() * sizeof(float));
  std::vector<float> back(host.size());
  b.download(back.data(), back.size());
  CHECK(back == host, "upload, device copy, download");
  // Out of memory is an error, and the backend keeps working.
  bool threw = false;
  try {
    Buffer<float> huge(gpu(), size_t{1} << 45);
  } catch (const Error& e) {
    threw = e.kind() == Error::Kind::kBackend && std::string(e.what()).find("out of memory") != std::string::npos;
  }
  CHECK(threw, "a 128 TiB allocation must throw a backend error naming out of memory");
  gpu().fill(a.get(), 2.0f, host.size());
  CHECK(std::fabs(gpu().sum_squares(a.get(), host.size()) - 4.0 * host.size()) < 1e-9, "usable after OOM");
}

NetConfig parity_config() {
  NetConfig c;
  c.data_dim = 13;
  c.width = 45;
  c.depth = 2;
  c.mlp_ratio = 3;
  c.time_features = 18;
  c.vocab_size = 7;
  c.cond_slots = 2;
  return c;
}

std::vector<float> params_of(const Model& m, ParamSet which = ParamSet::kTheta) {
  std::vector<float> p(m.net().param_count());
  m.get_params(p.data(), which);
  return p;
}

void expect_params_close(const char* what, const Model& g, const Model& c, double tol) {
  const double err = rel_error(params_of(g), params_of(c));
  CHECK(err <= tol, "%s: parameters differ by %.3g > %.3g", what, err, tol);
}

// A small DiT: 6×6×3 images in 9 patch tokens, width 12 (the 2-D position embedding needs a multiple of 4) with 3
// heads.
NetConfig parity_dit_config() {
  NetConfig c = parity_config();
  c.arch = Arch::kDit;
  c.image_size = 6;
  c.channels = 3;
  c.patch = 2;
  c.heads = 3;
  c.width = 12;
  c.data_dim = 6 * 6 * 3;
  return c;
}

void model_forward_backward_of(const NetConfig& cfg) {
  Model c(cpu(), cfg, 3), g(gpu(), cfg, 3);
  CHECK(params_of(g) == params_of(c), "the same seed must give bit-identical initial parameters");
  const int B = 37;
  const size_t BD = static_cast<size_t>(B) * cfg.data_dim, P = c.net().param_count();
  const std::vector<float> x = random_vec(BD), t = random_vec(B, 0.0f, 1.0f), dout = random_vec(BD);
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * cfg.cond_slots, cfg.vocab_size);
  std::vector<float> oc(BD), og(BD), dxc(BD), dxg(BD), gc(P), gg(P);
  c.forward_backward(x.data(), t.data(), tokens.data(), dout.data(), B, oc.data(), dxc.data(), gc.data());
  g.forward_backward(x.data(), t.data(), tokens.data(), dout.data(), B, og.data(), dxg.data(), gg.data());
  CHECK(rel_error(og, oc) <= setup->tol_gemm, "velocity: %.3g", rel_error(og, oc));
  CHECK(rel_error(dxg, dxc) <= setup->tol_gemm, "dx: %.3g", rel_error(dxg, dxc));
  CHECK(rel_error(gg, gc) <= setup->tol_gemm, "parameter gradients: %.3g", rel_error(gg, gc));
}

void model_forward_backward() {
  for (const NetConfig& cfg : {parity_config(), parity_dit_config()}) model_forward_backward_of(cfg);
}

// LoRA adapters (core/lora.h) on a perturbed base: forward, dx and adapter gradients, flow-matching steps that train
// only the adapter, and the merge.
void lora_models() {
  for (const NetConfig& cfg : {parity_config(), parity_dit_config()}) {
    Model c(cpu(), cfg, 3), g(gpu(), cfg, 3);
    // Weights within ±0.3: with ±1 the DiT's attention saturates, and a 1e-7 change of the input moves dx by 6e-4 on
    // the CPU alone (measured), which no backend comparison can resolve.
    const std::vector<float> base = random_vec(c.net().param_count(), -0.3f, 0.3f);
    LoraConfig l;
    l.rank = 4;
    l.alpha = 8;
    l.targets = cfg.arch == Arch::kDit ? std::vector<std::string>{"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "ada"}
                                       : std::vector<std::string>{"fc1", "fc2", "ada"};
    for (Model* m : {&c, &g}) {
      m->set_params(base.data());
      m->enable_lora(l, 5);
    }
    const size_t A = c.lora().param_count();
    std::vector<float> ac(A), ag(A);
    c.get_adapter(ac.data());
    g.get_adapter(ag.data());
    CHECK(ac == ag, "the same seed must give bit-identical adapters");
    const std::vector<float> adapter = random_vec(A, -0.3f, 0.3f);
    for (Model* m : {&c, &g}) m->set_adapter(adapter.data());
    const int B = 13;
    const size_t BD = static_cast<size_t>(B) * cfg.data_dim;
    const std::vector<float> x = random_vec(BD), t = random_vec(B, 0.0f, 1.0f), dout = random_vec(BD);
    const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * cfg.cond_slots, cfg.vocab_size);
    std::vector<float> oc(BD), og(BD), dxc(BD), dxg(BD), gc(A), gg(A);
    c.forward_backward(x.data(), t.data(), tokens.data(), dout.data(), B, oc.data(), dxc.data(), gc.data());
    g.forward_backward(x.data(), t.data(), tokens.data(), dout.data(), B, og.data(), dxg.data(), gg.data());
    CHECK(rel_error(og, oc) <= setup->tol_gemm, "adapted velocity: %.3g", rel_error(og, oc));
    CHECK(rel_error(dxg, dxc) <= setup->tol_gemm, "adapted dx: %.3g", rel_error(dxg, dxc));
    CHECK(rel_error(gg, gc) <= setup->tol_gemm, "adapter gradients: %.3g", rel_error(gg, gc));
    FlowMatchingOptions o = test::flow_matching_options();
    o.seed = 9;
    for (int step = 0; step < 3; ++step) {
      const StepStats sc = c.flow_matching_step(x.data(), tokens.data(), B, o);
      const StepStats sg = g.flow_matching_step(x.data(), tokens.data(), B, o);
      expect_close("adapter flow-matching loss", sg.loss, sc.loss, setup->tol_step);
    }
    c.get_adapter(ac.data());
    g.get_adapter(ag.data());
    CHECK(rel_error(ag, ac) <= setup->tol_step, "trained adapters: %.3g", rel_error(ag, ac));
    CHECK(params_of(g) == base, "the GPU's frozen base changed");
    for (Model* m : {&c, &g}) m->merge_lora();
    expect_params_close("merged base", g, c, setup->tol_step);
  }
}

void model_rollouts() {
  const NetConfig cfg = parity_config();
  Model c(cpu(), cfg, 4), g(gpu(), cfg, 4);
  const int B = 29, steps = 6;
  const size_t BD = static_cast<size_t>(B) * cfg.data_dim;
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * cfg.cond_slots, cfg.vocab_size);
  for (SolverKind solver : {SolverKind::kEuler, SolverKind::kHeun, SolverKind::kDpm2, SolverKind::kSde}) {
    SampleOptions o = test::sample_options();
    o.solver = solver;
    o.cfg_scale = solver == SolverKind::kHeun ? 2.0 : 1.0;
    o.seed = 11;
    o.chunk = 16;
    for (int i = 0; i <= steps; ++i) o.grid.push_back(1.0 - static_cast<double>(i) / steps);
    std::vector<float> xc(BD), xg(BD), lc(static_cast<size_t>(steps) * B), lg(lc.size());
    c.sample(ParamSet::kTheta, nullptr, tokens.data(), B, o, xc.data(), nullptr, lc.data());
    g.sample(ParamSet::kTheta, nullptr, tokens.data(), B, o, xg.data(), nullptr, lg.data());
    CHECK(rel_error(xg, xc) <= setup->tol_step, "solver %d: samples differ by %.3g", static_cast<int>(solver),
          rel_error(xg, xc));
    if (solver == SolverKind::kSde) CHECK(rel_error(lg, lc) <= setup->tol_step, "SDE log p: %.3g", rel_error(lg, lc));
  }
  // CPS in a window [1, 4) of the steps, the DPM2 tail after it, and the step means (log p is NaN outside the window).
  SampleOptions o = test::sample_options();
  o.solver = SolverKind::kSde;
  o.sde_kind = SdeKind::kCps;
  o.window_lo = 1;
  o.window_hi = 4;
  o.tail_solver = SolverKind::kDpm2;
  o.seed = 12;
  o.chunk = 16;
  for (int i = 0; i <= steps; ++i) o.grid.push_back(1.0 - static_cast<double>(i) / steps);
  std::vector<float> xc(BD), xg(BD), lc(static_cast<size_t>(steps) * B), lg(lc.size()), mc(steps * BD), mg(mc.size());
  c.sample(ParamSet::kTheta, nullptr, tokens.data(), B, o, xc.data(), nullptr, lc.data(), mc.data());
  g.sample(ParamSet::kTheta, nullptr, tokens.data(), B, o, xg.data(), nullptr, lg.data(), mg.data());
  CHECK(rel_error(xg, xc) <= setup->tol_step, "windowed CPS: samples differ by %.3g", rel_error(xg, xc));
  CHECK(rel_error(mg, mc) <= setup->tol_step, "windowed CPS: step means differ by %.3g", rel_error(mg, mc));
  const std::vector<float> window_c(lc.begin() + B, lc.begin() + 4 * B), window_g(lg.begin() + B, lg.begin() + 4 * B);
  CHECK(rel_error(window_g, window_c) <= setup->tol_step, "windowed CPS log p: %.3g", rel_error(window_g, window_c));
  CHECK(std::isnan(lg[0]) && std::isnan(lg[4 * B]), "log p outside the window is not NaN");

  // SA-Solver's steps with a plan (lib/sampling/sa-solver.ts derives the real one; the steps' parity is checked here):
  // noise on every step, three-point predictors and correctors once the history holds them, and the step into t = 0.
  SampleOptions sa = test::sample_options();
  sa.solver = SolverKind::kSaSolver;
  sa.cfg_scale = 2.0;
  sa.seed = 13;
  sa.chunk = 16;
  for (int i = 0; i <= steps; ++i) sa.grid.push_back(1.0 - static_cast<double>(i) / steps);
  for (int i = 1; i <= steps; ++i) {
    const double s = sa.grid[i - 1], t = sa.grid[i], d = 1.0 - t;
    const std::vector<double> row =
        i == steps ? std::vector<double>{0, 0, 1, 0, 0, 0, 0, 0}
        : i == 1   ? std::vector<double>{0, t, d, 0, 0, 0, 0, 0}
                   : std::vector<double>{0.9 * t / s,         0.3 * t, 0.7 * d, i > 2 ? 0.2 * d : 0,
                                       i > 3 ? 0.1 * d : 0, 0.6 * d, 0.3 * d, i > 2 ? 0.1 * d : 0};
    sa.sa_plan.insert(sa.sa_plan.end(), row.begin(), row.end());
  }
  std::vector<float> tc((steps + 1) * BD), tg(tc.size());
  c.sample(ParamSet::kTheta, nullptr, tokens.data(), B, sa, xc.data(), tc.data());
  g.sample(ParamSet::kTheta, nullptr, tokens.data(), B, sa, xg.data(), tg.data());
  CHECK(rel_error(tg, tc) <= setup->tol_step, "SA-Solver: trajectories differ by %.3g", rel_error(tg, tc));
  CHECK(rel_error(xg, xc) <= setup->tol_step, "SA-Solver: samples differ by %.3g", rel_error(xg, xc));
}

void flow_matching_step() {
  const NetConfig cfg = parity_config();
  Model c(cpu(), cfg, 5), g(gpu(), cfg, 5);
  const int B = 37;
  const std::vector<float> x0 = random_vec(static_cast<size_t>(B) * cfg.data_dim);
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * cfg.cond_slots, cfg.vocab_size);
  FlowMatchingOptions o = test::flow_matching_options();
  o.seed = 9;
  o.micro_batch = 16;
  o.cond_dropout = 0.2;
  for (int step = 0; step < 3; ++step) {
    const StepStats sc = c.flow_matching_step(x0.data(), tokens.data(), B, o);
    const StepStats sg = g.flow_matching_step(x0.data(), tokens.data(), B, o);
    expect_close("flow-matching loss", sg.loss, sc.loss, setup->tol_step);
    expect_close("flow-matching grad norm", sg.grad_norm, sc.grad_norm, setup->tol_step);
  }
  expect_params_close("flow-matching step", g, c, setup->tol_step);
}

void nft_step() {
  const NetConfig cfg = parity_config();
  Model c(cpu(), cfg, 6), g(gpu(), cfg, 6);
  for (Model* m : {&c, &g}) {
    m->copy_params(ParamSet::kOld, ParamSet::kTheta);
    m->copy_params(ParamSet::kRef, ParamSet::kTheta);
  }
  const int B = 23;
  const std::vector<float> x0 = random_vec(static_cast<size_t>(B) * cfg.data_dim), r = random_vec(B, 0.0f, 1.0f);
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * cfg.cond_slots, cfg.vocab_size);
  NftStepOptions o = test::nft_step_options();
  o.seed = 12;
  o.times = {0.9, 0.7, 0.5, 0.3, 0.1};
  o.times_per_sample = 2;
  o.micro_batch = 10;
  o.loss.kl_coef = 0.1f;
  for (int step = 0; step < 3; ++step) {
    const StepStats sc = c.nft_step(x0.data(), tokens.data(), r.data(), B, o);
    const StepStats sg = g.nft_step(x0.data(), tokens.data(), r.data(), B, o);
    expect_close("NFT loss", sg.loss, sc.loss, setup->tol_step);
    for (Model* m : {&c, &g}) m->blend_params(ParamSet::kOld, 0.5, ParamSet::kTheta);
  }
  expect_params_close("DiffusionNFT step", g, c, setup->tol_step);
}

void awm_step() {
  const NetConfig cfg = parity_config();
  Model c(cpu(), cfg, 8), g(gpu(), cfg, 8);
  for (Model* m : {&c, &g}) {
    m->copy_params(ParamSet::kOld, ParamSet::kTheta);
    m->copy_params(ParamSet::kRef, ParamSet::kTheta);
  }
  const int B = 23;
  const std::vector<float> x0 = random_vec(static_cast<size_t>(B) * cfg.data_dim), adv = random_vec(B, -1.0f, 1.0f);
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * cfg.cond_slots, cfg.vocab_size);
  AwmStepOptions o;
  o.seed = 14;
  o.times = {1.0, 0.9, 0.7, 0.5, 0.3, 0.1};
  o.strata = {1, 2, 4, 5};
  o.micro_batch = 10;
  o.loss = {AwmWeighting::kGhuber, 0.25f, 0.1f, 1.0f};
  o.optimizer = test::optimizer_options();
  for (int step = 0; step < 3; ++step) {
    const AwmStepStats sc = c.awm_step(x0.data(), tokens.data(), adv.data(), B, o);
    const AwmStepStats sg = g.awm_step(x0.data(), tokens.data(), adv.data(), B, o);
    expect_close("AWM loss", sg.step.loss, sc.step.loss, setup->tol_step);
    expect_close("AWM mean l", sg.means.fm, sc.means.fm, setup->tol_step);
    for (Model* m : {&c, &g}) m->blend_params(ParamSet::kOld, 0.3, ParamSet::kTheta);
  }
  expect_params_close("AWM step", g, c, setup->tol_step);
}

void dgpo_step() {
  const NetConfig cfg = parity_config();
  Model c(cpu(), cfg, 9), g(gpu(), cfg, 9);
  for (Model* m : {&c, &g}) {
    m->copy_params(ParamSet::kOld, ParamSet::kTheta);
    m->copy_params(ParamSet::kRef, ParamSet::kTheta);
  }
  const int B = 24, G = 4;
  const std::vector<float> x0 = random_vec(static_cast<size_t>(B) * cfg.data_dim), adv = random_vec(B, -2.0f, 2.0f);
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * cfg.cond_slots, cfg.vocab_size);
  std::vector<int32_t> groups(B);
  for (int b = 0; b < B; ++b) groups[b] = b / G;
  DgpoStepOptions o;
  o.seed = 15;
  o.times = {1.0, 0.8, 0.6};
  o.groups = B / G;
  o.loss = {10.0, 0.05, 0.02, G, false};
  o.optimizer = test::optimizer_options();
  for (int micro : {0, 10}) {
    o.micro_batch = micro;  // one pass, then two
    const DgpoStepStats sc = c.dgpo_step(x0.data(), tokens.data(), adv.data(), groups.data(), B, o);
    const DgpoStepStats sg = g.dgpo_step(x0.data(), tokens.data(), adv.data(), groups.data(), B, o);
    expect_close("DGPO loss", sg.step.loss, sc.step.loss, setup->tol_step);
    expect_close("DGPO mean weight", sg.weight_mean, sc.weight_mean, setup->tol_step);
    for (Model* m : {&c, &g}) m->blend_params(ParamSet::kOld, 0.3, ParamSet::kTheta);
  }
  expect_params_close("DGPO step", g, c, setup->tol_step);
}

void grpo_step() {
  const NetConfig cfg = parity_config();
  Model c(cpu(), cfg, 7), g(gpu(), cfg, 7);
  for (Model* m : {&c, &g}) m->copy_params(ParamSet::kRef, ParamSet::kTheta);
  const int B = 19, steps = 5;
  const size_t BD = static_cast<size_t>(B) * cfg.data_dim;
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * cfg.cond_slots, cfg.vocab_size);
  SampleOptions so = test::sample_options();
  so.solver = SolverKind::kSde;
  so.seed = 13;
  for (int i = 0; i <= steps; ++i) so.grid.push_back(1.0 - static_cast<double>(i) / steps);
  // One rollout on the CPU feeds both steps, so they train on identical data.
  std::vector<float> out(BD), trajectory((steps + 1) * BD), logp(static_cast<size_t>(steps) * B);
  c.sample(ParamSet::kTheta, nullptr, tokens.data(), B, so, out.data(), trajectory.data(), logp.data());
  const std::vector<float> adv = random_vec(B, -2, 2);
  GrpoStepOptions o = test::grpo_step_options();
  o.grid = so.grid;
  o.train_steps = 4;
  o.cfg_scale = 1.5;
  o.micro_batch = 30;
  o.loss.clip_range = 0.2f;
  o.loss.kl_coef = 0.04f;
  for (int step = 0; step < 2; ++step) {
    const GrpoStepStats sc = c.grpo_step(trajectory.data(), tokens.data(), adv.data(), logp.data(), B, o);
    const GrpoStepStats sg = g.grpo_step(trajectory.data(), tokens.data(), adv.data(), logp.data(), B, o);
    expect_close("GRPO loss", sg.step.loss, sc.step.loss, setup->tol_step);
    CHECK(std::fabs(sg.clip_fraction - sc.clip_fraction) <= 0.05, "clip fraction %g vs %g", sg.clip_fraction,
          sc.clip_fraction);
  }
  // GRPO-Guard on the rollout's step means, and a window of 2 transitions from a per-sample start.
  std::vector<float> means(steps * BD);
  c.sample(ParamSet::kTheta, nullptr, tokens.data(), B, so, out.data(), trajectory.data(), logp.data(), means.data());
  GrpoStepOptions guard = o;
  guard.guard = true;
  guard.loss.kl_coef = 0.0f;
  guard.loss.clip_range = 0.05f;
  guard.train_steps = 2;
  for (int b = 0; b < B; ++b) guard.first_step.push_back(b % 3);
  const GrpoStepStats sc =
      c.grpo_step(trajectory.data(), tokens.data(), adv.data(), logp.data(), B, guard, means.data());
  const GrpoStepStats sg =
      g.grpo_step(trajectory.data(), tokens.data(), adv.data(), logp.data(), B, guard, means.data());
  expect_close("GRPO-Guard loss", sg.step.loss, sc.step.loss, setup->tol_step);
  CHECK(std::fabs(sg.ratio_mean - sc.ratio_mean) <= 1e-4, "Guard ratio mean %g vs %g", sg.ratio_mean, sc.ratio_mean);
  expect_params_close("FlowGRPO step", g, c, setup->tol_step);
}

void steps_are_reproducible() {
  const NetConfig cfg = parity_config();
  auto run = [&] {
    Model g(gpu(), cfg, 8);
    g.copy_params(ParamSet::kOld, ParamSet::kTheta);
    const int B = 23;
    std::mt19937 local(1);
    std::vector<float> x0(static_cast<size_t>(B) * cfg.data_dim), r(B, 0.3f);
    for (float& v : x0) v = std::uniform_real_distribution<float>(-1, 1)(local);
    std::vector<int32_t> tokens(static_cast<size_t>(B) * cfg.cond_slots, 1);
    NftStepOptions o = test::nft_step_options();
    o.seed = 3;
    for (int i = 0; i < 3; ++i) g.nft_step(x0.data(), tokens.data(), r.data(), B, o);
    return params_of(g);
  };
  CHECK(run() == run(), "two GPU runs from the same seed must be bit-identical");
}

const std::vector<test::Case> kCases = {
    {"Philox fills", philox_fills},
    {"linear forward and backward", linear_layers},
    {"SiLU, add, lincomb, fill", activations_and_elementwise},
    {"time features and condition embedding", embeddings},
    {"adaLN forward and backward", adaln},
    {"DiT ops: GELU, modulated norm, gated residual, attention, patchify", dit_ops},
    {"attention and modulated norm at every row block size", row_kernels_at_every_block_size},
    {"interpolation and MSE", flow_matching_pieces},
    {"fused NFT loss", nft_loss_variants},
    {"fused AWM loss", awm_loss_variants},
    {"fused DGPO loss and row errors", dgpo_pieces},
    {"SDE log-prob and GRPO loss", sde_pieces},
    {"sum of squares and AdamW", optimizer_pieces},
    {"memory, copies and out-of-memory", memory_and_errors},
    {"model forward and backward", model_forward_backward},
    {"LoRA adapters: forward, backward, steps, merge", lora_models},
    {"rollouts (euler, heun + CFG, dpm2, sde, sa-solver + CFG)", model_rollouts},
    {"whole flow-matching step", flow_matching_step},
    {"whole DiffusionNFT step", nft_step},
    {"whole FlowGRPO and GRPO-Guard steps", grpo_step},
    {"whole AWM step", awm_step},
    {"whole DGPO step", dgpo_step},
    {"GPU steps are reproducible", steps_are_reproducible},
};

}  // namespace

int main() {
  const DeviceInfo info = device_info();
  if (!info.cuda_available) {
    std::printf("SKIPPED test_cuda_parity: ran nothing because no CUDA device is present (%s)\n", info.reason.c_str());
    return 0;
  }
  std::printf("CUDA device: %s\n", info.device_name.c_str());
  std::vector<test::Case> cases;
  static Setup s;
  for (Precision precision : {Precision::kFp32, Precision::kTf32}) {
    cases.push_back({std::string("[") + precision_name(precision) + "] open the backend", [precision] {
                       s.gpu.reset();
                       s.precision = precision;
                       s.gpu = create_cuda_backend({0, precision});
                       s.tol_gemm = precision == Precision::kFp32 ? 1e-5 : 3e-3;
                       s.tol_step = precision == Precision::kFp32 ? 1e-4 : 2e-2;
                       setup = &s;
                     }});
    for (const test::Case& c : kCases) {
      cases.push_back({std::string("[") + precision_name(precision) + "] " + c.name, c.body});
    }
  }
  const int status = test::run(cases);
  s.gpu.reset();  // before the CUDA runtime unloads
  return status;
}
