#include "core/lora.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/math/philox.h"

namespace dnft {

namespace {

constexpr const char* kWeightSuffix = ".weight";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "blocks.3.attn.qkv.weight" → "attn.qkv"; "" for a tensor outside the blocks or not a weight.
std::string block_module(const std::string& name) {
  if (name.rfind("blocks.", 0) != 0 || !ends_with(name, kWeightSuffix)) return "";
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos) return "";
  return name.substr(dot + 1, name.size() - dot - 1 - std::char_traits<char>::length(kWeightSuffix));
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
  return out;
}

}  // namespace

std::vector<std::string> lora_modules(const std::vector<ParamSpec>& base) {
  std::vector<std::string> known;
  for (const ParamSpec& p : base) {
    const std::string module = block_module(p.name);
    if (!module.empty() && std::find(known.begin(), known.end(), module) == known.end()) known.push_back(module);
  }
  return known;
}

LoraLayout::LoraLayout(const LoraConfig& config, const std::vector<ParamSpec>& base)
    : config_(config), slot_(base.size(), -1) {
  auto fail = [](const std::string& message) { throw Error(Error::Kind::kRange, "lora." + message); };
  if (config.rank < 1) fail("rank must be at least 1, got " + std::to_string(config.rank));
  if (config.targets.empty()) fail("targets must name at least one module");
  const std::vector<std::string> known = lora_modules(base);
  for (size_t i = 0; i < config.targets.size(); ++i) {
    const std::string& t = config.targets[i];
    if (std::find(known.begin(), known.end(), t) == known.end()) {
      fail("targets: unknown module '" + t + "'; this network has " + joined(known));
    }
    if (std::find(config.targets.begin(), config.targets.begin() + i, t) != config.targets.begin() + i) {
      fail("targets: '" + t + "' is repeated");
    }
  }
  const int64_t r = config.rank;
  for (size_t i = 0; i < base.size(); ++i) {
    const ParamSpec& w = base[i];
    const std::string module = block_module(w.name);
    if (module.empty() || std::find(config.targets.begin(), config.targets.end(), module) == config.targets.end()) {
      continue;
    }
    const std::string stem = w.name.substr(0, w.name.size() - std::char_traits<char>::length(kWeightSuffix));
    const int64_t N = w.shape[0], K = w.shape[1];
    if (r * std::max(N, K) > std::numeric_limits<int>::max()) {
      fail("rank " + std::to_string(r) + " is too large for " + stem + ": A and B must have under 2^31 values");
    }
    slot_[i] = static_cast<int>(layout_.size());
    base_offset_.push_back(w.offset);
    for (auto [name, shape] : {std::pair<std::string, std::vector<int64_t>>{stem + ".lora_A.weight", {r, K}},
                               {stem + ".lora_B.weight", {N, r}}}) {
      ParamSpec spec{
          name, shape, dnft::param_count(layout_), static_cast<size_t>(shape[0] * shape[1]), true, ParamInit::kZero,
          0.0f};
      layout_.push_back(std::move(spec));
    }
  }
}

void LoraLayout::init_params(Backend& backend, float* adapter, uint64_t seed) const {
  for (size_t a = 0; a < layout_.size(); a += 2) {
    const ParamSpec& A = layout_[a];
    const ParamSpec& B = layout_[a + 1];
    float* dst = adapter + A.offset;
    if (config_.init == LoraInit::kGaussian) {
      backend.fill_normal(dst, A.size, seed, kStreamLora, A.offset, 1.0f / static_cast<float>(config_.rank));
    } else {
      const float bound = 1.0f / std::sqrt(static_cast<float>(A.shape[1]));
      backend.fill_uniform(dst, A.size, seed, kStreamLora, A.offset, -bound, bound);
    }
    backend.fill(adapter + B.offset, 0.0f, B.size);
  }
}

void LoraLayout::merge(Backend& backend, float* base, const float* adapter) const {
  // W (N, K) += s·B·A is the weight gradient of a linear with dout = s·Bᵀ (rank, N) and in = A (rank, K), so the
  // existing linear_backward does it; only Bᵀ is formed, on the host.
  const int r = config_.rank;
  for (size_t a = 0; a < layout_.size(); a += 2) {
    const ParamSpec& A = layout_[a];
    const ParamSpec& B = layout_[a + 1];
    const int N = static_cast<int>(B.shape[0]), K = static_cast<int>(A.shape[1]);
    std::vector<float> b(B.size), bt(B.size);
    backend.copy_to_host(b.data(), adapter + B.offset, B.size * sizeof(float));
    for (int n = 0; n < N; ++n) {
      for (int k = 0; k < r; ++k) bt[static_cast<size_t>(k) * N + n] = scale() * b[static_cast<size_t>(n) * r + k];
    }
    Buffer<float> dout(backend, B.size);
    dout.upload(bt.data(), bt.size());
    backend.linear_backward(nullptr, base + base_offset_[a / 2], nullptr, dout.get(), adapter + A.offset, nullptr, r, K,
                            N);
  }
}

namespace {

// A base linear (weight at layout index `weight`, its bias next) and, when it carries one in this pass, its adapter.
struct AdaptedLinear {
  const ParamSpec& w;
  const ParamSpec& b;
  int N, K;
  const ParamSpec* A = nullptr;  // null: no adapter
  const ParamSpec* B = nullptr;
  int slot = -1;  // the adapter's number (A's layout index / 2)

  AdaptedLinear(const LoraLayout* lora, const std::vector<ParamSpec>& base, const NetParams& params, int weight)
      : w(base[weight]), b(base[weight + 1]), N(static_cast<int>(w.shape[0])), K(static_cast<int>(w.shape[1])) {
    const int a = lora != nullptr && params.adapter != nullptr ? lora->adapter_of(weight) : -1;
    if (a < 0) return;
    A = &lora->layout()[a];
    B = &lora->layout()[a + 1];
    slot = a / 2;
  }
};

}  // namespace

void adapted_linear_forward(Backend& be, LoraWorkspace& ws, const LoraLayout* lora, const std::vector<ParamSpec>& base,
                            const NetParams& params, int weight, float* out, const float* in, int rows) {
  const AdaptedLinear l(lora, base, params, weight);
  be.linear_forward(out, in, params.base + l.w.offset, params.base + l.b.offset, rows, l.K, l.N);
  if (l.A == nullptr) return;
  const int r = lora->config().rank;
  const size_t n = static_cast<size_t>(rows) * l.N;
  if (ws.saved_ax.size() < lora->layout().size() / 2) ws.saved_ax.resize(lora->layout().size() / 2);
  Buffer<float>& ax = ws.saved_ax[l.slot];
  ensure(ax, be, static_cast<size_t>(rows) * r);
  ensure(ws.tmp_out, be, n);
  be.linear_forward(ax.get(), in, params.adapter + l.A->offset, nullptr, rows, l.K, r);
  be.linear_forward(ws.tmp_out.get(), ax.get(), params.adapter + l.B->offset, nullptr, rows, r, l.N);
  be.lincomb(out, n, 1.0f, out, lora->scale(), ws.tmp_out.get(), 0.0f, nullptr);
}

void adapted_linear_backward(Backend& be, LoraWorkspace& ws, const LoraLayout* lora, const std::vector<ParamSpec>& base,
                             const NetParams& params, const NetGrads& grads, int weight, float* din, const float* dout,
                             const float* in, int rows) {
  const AdaptedLinear l(lora, base, params, weight);
  auto grad = [&](const ParamSpec& p) { return grads.base != nullptr ? grads.base + p.offset : nullptr; };
  be.linear_backward(din, grad(l.w), grad(l.b), dout, in, params.base + l.w.offset, rows, l.K, l.N);
  if (l.A == nullptr) return;
  const int r = lora->config().rank;
  const size_t n = static_cast<size_t>(rows) * l.N;
  auto agrad = [&](const ParamSpec& p) { return grads.adapter != nullptr ? grads.adapter + p.offset : nullptr; };
  ensure(ws.tmp_out, be, n);
  ensure(ws.tmp_rank, be, static_cast<size_t>(rows) * r);
  // With g = s·dout: dB += gᵀ·(A x), d(A x) = g·B, dA += d(A x)ᵀ·x, dx += d(A x)·A.
  be.lincomb(ws.tmp_out.get(), n, lora->scale(), dout, 0.0f, dout, 0.0f, nullptr);
  be.linear_backward(ws.tmp_rank.get(), agrad(*l.B), nullptr, ws.tmp_out.get(), ws.saved_ax[l.slot].get(),
                     params.adapter + l.B->offset, rows, r, l.N);
  float* dx = nullptr;
  if (din != nullptr) {
    ensure(ws.tmp_in, be, static_cast<size_t>(rows) * l.K);
    dx = ws.tmp_in.get();
  }
  if (dx == nullptr && agrad(*l.A) == nullptr) return;
  be.linear_backward(dx, agrad(*l.A), nullptr, ws.tmp_rank.get(), in, params.adapter + l.A->offset, rows, l.K, r);
  if (dx != nullptr) be.add_inplace(din, dx, static_cast<size_t>(rows) * l.K);
}

}  // namespace dnft
