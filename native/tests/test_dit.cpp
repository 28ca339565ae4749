// Tests of the DiT's ops on the CPU backend and of the whole DiT: finite-difference gradients of every op and of the
// network, attention against a float64 reference (large logits included), the patch maps, and config validation.
#include <cmath>
#include <string>
#include <vector>

#include "core/dit.h"
#include "core/math/activation.h"
#include "core/math/philox.h"
#include "tests/check.h"
#include "tests/net_gradients.h"

using namespace dnft;

namespace {

std::vector<float> randn(size_t n, uint64_t seed, float stddev = 1.0f) {
  std::vector<float> v(n);
  cpu_backend().fill_normal(v.data(), n, seed, kStreamUser, 0, stddev);
  return v;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

void gelu_gradient() {
  std::vector<float> z = randn(257, 1, 2.0f), dout = randn(257, 2), out(257), dz(257);
  cpu_backend().gelu_backward(dz.data(), dout.data(), z.data(), z.size());
  test::check_directional(
      "gelu", z, 0, z.size(), dz.data(),
      [&] {
        cpu_backend().gelu_forward(out.data(), z.data(), z.size());
        return dot(out, dout);
      },
      3);
  CHECK(std::fabs(gelu(1.0f) - 0.8411920f) < 1e-6f, "gelu(1) = %.7f", gelu(1.0f));  // PyTorch's tanh GELU
}

void modulated_norm_gradient() {
  const int B = 3, T = 5, W = 8, stride = 3 * W;  // scale, shift and an unused third part per sample
  std::vector<float> in = randn(B * T * W, 4), mod = randn(B * stride, 5, 0.5f), dout = randn(B * T * W, 6);
  std::vector<float> out(in.size()), mean(B * T), rstd(B * T), din(in.size(), 0.0f), dmod(mod.size(), 0.0f);
  auto forward = [&] {
    cpu_backend().modulated_norm_forward(out.data(), mean.data(), rstd.data(), in.data(), mod.data(), mod.data() + W, B,
                                         T, W, stride);
    return dot(out, dout);
  };
  forward();
  cpu_backend().modulated_norm_backward(din.data(), dmod.data(), dmod.data() + W, dout.data(), in.data(), mean.data(),
                                        rstd.data(), mod.data(), B, T, W, stride);
  test::check_directional("modulated norm: input", in, 0, in.size(), din.data(), forward, 7);
  test::check_directional("modulated norm: scale and shift", mod, 0, mod.size(), dmod.data(), forward, 8);
}

void gated_residual_gradient() {
  const int B = 2, T = 6, W = 5, stride = 2 * W;
  std::vector<float> h = randn(B * T * W, 9), y = randn(B * T * W, 10), gate = randn(B * stride, 11),
                     dout = randn(B * T * W, 12);
  std::vector<float> out(h.size()), dy(y.size()), dgate(gate.size(), 0.0f);
  auto forward = [&] {
    cpu_backend().gated_residual_forward(out.data(), h.data(), y.data(), gate.data() + W, B, T, W, stride);
    return dot(out, dout);
  };
  cpu_backend().gated_residual_backward(dy.data(), dgate.data() + W, dout.data(), y.data(), gate.data() + W, B, T, W,
                                        stride);
  test::check_directional("gated residual: h", h, 0, h.size(), dout.data(), forward, 13);
  test::check_directional("gated residual: y", y, 0, y.size(), dy.data(), forward, 14);
  test::check_directional("gated residual: gate", gate, 0, gate.size(), dgate.data(), forward, 15);
}

void attention_gradient() {
  const int B = 2, T = 7, H = 3, d = 4, W = H * d;
  std::vector<float> qkv = randn(B * T * 3 * W, 16), dout = randn(B * T * W, 17);
  std::vector<float> out(dout.size()), probs(B * H * T * T), dqkv(qkv.size());
  auto forward = [&] {
    cpu_backend().attention_forward(out.data(), probs.data(), qkv.data(), B, T, H, d);
    return dot(out, dout);
  };
  forward();
  cpu_backend().attention_backward(dqkv.data(), dout.data(), qkv.data(), probs.data(), B, T, H, d);
  test::check_directional("attention: qkv", qkv, 0, qkv.size(), dqkv.data(), forward, 18);
}

// softmax(q kᵀ/√d) v in double, with the row maximum subtracted.
std::vector<double> naive_attention(const std::vector<float>& qkv, int B, int T, int H, int d) {
  const int W = H * d;
  std::vector<double> out(static_cast<size_t>(B) * T * W), logits(T);
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < T; ++i) {
        const float* q = &qkv[(static_cast<size_t>(b) * T + i) * 3 * W + h * d];
        double max = -INFINITY, sum = 0;
        for (int j = 0; j < T; ++j) {
          const float* k = &qkv[(static_cast<size_t>(b) * T + j) * 3 * W + W + h * d];
          double s = 0;
          for (int e = 0; e < d; ++e) s += static_cast<double>(q[e]) * k[e];
          logits[j] = s / std::sqrt(static_cast<double>(d));
          max = std::max(max, logits[j]);
        }
        for (int j = 0; j < T; ++j) sum += (logits[j] = std::exp(logits[j] - max));
        for (int e = 0; e < d; ++e) {
          double acc = 0;
          for (int j = 0; j < T; ++j)
            acc += logits[j] / sum * qkv[(static_cast<size_t>(b) * T + j) * 3 * W + 2 * W + h * d + e];
          out[(static_cast<size_t>(b) * T + i) * W + h * d + e] = acc;
        }
      }
    }
  }
  return out;
}

void attention_matches_float64() {
  const int B = 3, T = 9, H = 2, d = 6, W = H * d;
  for (float stddev : {1.0f, 30.0f}) {  // 30: logits of order 10³, where an unshifted exp overflows
    const std::vector<float> qkv = randn(B * T * 3 * W, 19, stddev);
    std::vector<float> out(B * T * W), probs(B * H * T * T);
    cpu_backend().attention_forward(out.data(), probs.data(), qkv.data(), B, T, H, d);
    const std::vector<double> ref = naive_attention(qkv, B, T, H, d);
    double diff = 0, norm = 0;
    bool finite = true;
    for (size_t i = 0; i < out.size(); ++i) {
      finite = finite && std::isfinite(out[i]);
      diff += (out[i] - ref[i]) * (out[i] - ref[i]);
      norm += ref[i] * ref[i];
    }
    CHECK(finite, "non-finite output at stddev %g", stddev);
    CHECK(std::sqrt(diff / norm) < 1e-5, "stddev %g: relative error %g", stddev, std::sqrt(diff / norm));
  }
}

void patchify_is_a_permutation() {
  struct Shape {
    int S, C, p;
  };
  for (const Shape s : {Shape{6, 3, 2}, Shape{8, 1, 4}, Shape{5, 2, 1}}) {
    const int B = 2, D = s.S * s.S * s.C;
    std::vector<float> x(B * D), tokens(x.size()), back(x.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
    cpu_backend().patchify(tokens.data(), x.data(), B, s.S, s.C, s.p);
    cpu_backend().unpatchify(back.data(), tokens.data(), B, s.S, s.C, s.p);
    CHECK(back == x, "unpatchify(patchify(x)) != x for S %d C %d p %d", s.S, s.C, s.p);
    // Token 1 starts at pixel (0, p), channel 0 (HWC order).
    const int P = s.p * s.p * s.C;
    CHECK(s.S == s.p || tokens[P] == static_cast<float>(s.p * s.C), "token 1 starts at %g", tokens[P]);
  }
}

NetConfig dit_config() {
  NetConfig c;
  c.arch = Arch::kDit;
  c.image_size = 6;  // 9 tokens
  c.channels = 3;
  c.patch = 2;
  c.data_dim = 108;
  c.width = 12;  // 3 heads of 4
  c.heads = 3;
  c.depth = 2;
  c.mlp_ratio = 2;
  c.time_features = 8;
  c.vocab_size = 5;
  c.cond_slots = 2;
  return c;
}

void dit_backward_matches_finite_differences() { test::check_network_gradients(dit_config(), 3); }

void dit_starts_at_zero() {
  const NetConfig c = dit_config();
  Model model(cpu_backend(), c, 1);
  std::vector<float> x = randn(2 * c.data_dim, 20), t = {0.3f, 0.8f}, out(x.size(), 1.0f);
  std::vector<int32_t> tokens(2 * c.cond_slots, 1);
  model.velocity(ParamSet::kTheta, x.data(), t.data(), tokens.data(), 2, out.data());
  bool zero = true;
  for (float v : out) zero = zero && v == 0.0f;
  CHECK(zero, "adaLN-Zero and the zero final linear must give a zero output at initialisation");
}

void config_d_parameter_count() {
  NetConfig c = dit_config();
  c.image_size = 16;
  c.data_dim = 768;
  c.width = 192;
  c.heads = 4;
  c.depth = 4;
  c.mlp_ratio = 4;
  c.time_features = 64;
  c.vocab_size = 32;
  c.cond_slots = 8;
  const size_t n = param_count(param_layout(c));
  CHECK(n == 2843340, "config D has %zu parameters", n);
}

void config_errors_name_the_field() {
  auto message = [](NetConfig c) -> std::string {
    try {
      validate(c);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  NetConfig c = dit_config();
  c.data_dim = 100;
  CHECK(message(c).find("config.dataDim") == 0, "%s", message(c).c_str());
  c = dit_config();
  c.heads = 5;
  CHECK(message(c).find("config.width") == 0 && message(c).find("heads") != std::string::npos, "%s",
        message(c).c_str());
  c = dit_config();
  c.patch = 4;
  CHECK(message(c).find("config.imageSize") == 0 && message(c).find("patch") != std::string::npos, "%s",
        message(c).c_str());
}

}  // namespace

int main() {
  return test::run({
      {"gelu gradient", gelu_gradient},
      {"modulated norm gradient", modulated_norm_gradient},
      {"gated residual gradient", gated_residual_gradient},
      {"attention gradient", attention_gradient},
      {"attention matches float64, large logits included", attention_matches_float64},
      {"patchify is a permutation in HWC order", patchify_is_a_permutation},
      {"DiT backward matches finite differences", dit_backward_matches_finite_differences},
      {"DiT output is zero at initialisation", dit_starts_at_zero},
      {"config D parameter count", config_d_parameter_count},
      {"config errors name the field", config_errors_name_the_field},
  });
}
