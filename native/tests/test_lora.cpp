// LoRA adapters (core/lora.h) on both networks: the adapted backward against finite differences, a fresh adapter
// changing nothing, the frozen base, adapter-sized training state, adapter sets for θ_old, merging, and errors.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/math/philox.h"
#include "core/model.h"
#include "tests/check.h"
#include "tests/net_gradients.h"
#include "tests/options.h"

using namespace dnft;

namespace {

NetConfig mlp_config() {
  NetConfig c;
  c.data_dim = 3;
  c.width = 8;
  c.depth = 2;
  c.mlp_ratio = 2;
  c.time_features = 6;
  c.vocab_size = 4;
  c.cond_slots = 2;
  return c;
}

NetConfig dit_config() {
  NetConfig c = mlp_config();
  c.arch = Arch::kDit;
  c.image_size = 4;  // 4 tokens
  c.channels = 2;
  c.patch = 2;
  c.data_dim = 32;
  c.heads = 2;  // of 4 channels
  return c;
}

// The block modules an adapter may target.
std::vector<std::string> every_module(Arch arch) {
  if (arch == Arch::kDit) return {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "ada"};
  return {"fc1", "fc2", "ada"};
}

LoraConfig lora_config(const NetConfig& c, int rank = 3, double alpha = 6.0) {
  LoraConfig l;
  l.rank = rank;
  l.alpha = alpha;
  l.targets = every_module(c.arch);
  return l;
}

std::vector<float> randn(size_t n, uint64_t seed, float stddev = 1.0f) {
  std::vector<float> v(n);
  cpu_backend().fill_normal(v.data(), n, seed, kStreamUser, 0, stddev);
  return v;
}

// Perturbs the base, so that the zero-initialised adaLN and output layers pass gradient (as a trained base does).
void perturb_base(Model& model) {
  std::vector<float> base(model.net().param_count());
  model.get_params(base.data());
  const std::vector<float> noise = randn(base.size(), 9, 0.3f);
  for (size_t i = 0; i < base.size(); ++i) base[i] += noise[i];
  model.set_params(base.data());
}

// A perturbed base with a perturbed adapter, so that every tensor carries gradient.
void perturb(Model& model) {
  perturb_base(model);
  model.set_adapter(randn(model.lora().param_count(), 10, 0.3f).data());
}

struct Batch {
  std::vector<float> x, t;
  std::vector<int32_t> tokens;
  Batch(const NetConfig& c, int B) : x(randn(static_cast<size_t>(B) * c.data_dim, 1)), t(B), tokens(B * c.cond_slots) {
    cpu_backend().fill_uniform(t.data(), t.size(), 2, kStreamUser, 0, 0.0f, 1.0f);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 5 + 1) % c.vocab_size);
  }
  std::vector<float> velocity(Model& model, ParamSet which = ParamSet::kTheta) {
    std::vector<float> out(x.size());
    model.velocity(which, x.data(), t.data(), tokens.data(), static_cast<int>(t.size()), out.data());
    return out;
  }
};

// The adapter gradients and dx of Σ out·dout against directional finite differences; the base gets none.
void check_adapter_gradients(const NetConfig& c, double h, double tolerance) {
  const int B = 3;
  Model model(cpu_backend(), c, 3);
  model.enable_lora(lora_config(c, 3, 3.0), 4);
  perturb(model);
  Batch in(c, B);
  const std::vector<float> dout = randn(in.x.size(), 4);
  const size_t n = model.lora().param_count();
  std::vector<float> adapter(n), out(dout.size()), dx(dout.size()), grads(n);
  model.get_adapter(adapter.data());
  model.forward_backward(in.x.data(), in.t.data(), in.tokens.data(), dout.data(), B, out.data(), dx.data(),
                         grads.data());
  auto projected = [&] {
    const std::vector<float> v = in.velocity(model);
    double sum = 0;
    for (size_t i = 0; i < v.size(); ++i) sum += static_cast<double>(v[i]) * dout[i];
    return sum;
  };
  for (const ParamSpec& p : model.lora().layout()) {
    test::check_directional(
        p.name.c_str(), adapter, p.offset, p.size, grads.data() + p.offset,
        [&] {
          model.set_adapter(adapter.data());
          return projected();
        },
        11 + p.offset, h, tolerance);
  }
  model.set_adapter(adapter.data());
  test::check_directional("x", in.x, 0, in.x.size(), dx.data(), projected, 11, h, tolerance);
}

void mlp_adapter_gradients() { check_adapter_gradients(mlp_config(), 3e-3, 2e-3); }
// The attention's float32 rounding limits central differences to about 1e-2 here (the portable kernels round
// differently from AVX2); test/lora.test.ts checks the same gradients against PyTorch at 1e-4.
void dit_adapter_gradients() { check_adapter_gradients(dit_config(), 2e-3, 1e-2); }

void fresh_adapter_changes_nothing() {
  for (const NetConfig& c : {mlp_config(), dit_config()}) {
    for (LoraInit init : {LoraInit::kGaussian, LoraInit::kKaiming}) {
      Model model(cpu_backend(), c, 5);
      perturb_base(model);
      Batch in(c, 2);
      const std::vector<float> plain = in.velocity(model);
      LoraConfig l = lora_config(c);
      l.init = init;
      model.enable_lora(l, 6);
      const std::vector<float> adapted = in.velocity(model);
      CHECK(std::memcmp(plain.data(), adapted.data(), plain.size() * sizeof(float)) == 0,
            "a zero-B adapter changed the output (arch %d, init %d)", static_cast<int>(c.arch), static_cast<int>(init));
      std::vector<float> a(model.lora().param_count());
      model.get_adapter(a.data());
      double sum_a = 0;
      for (const ParamSpec& p : model.lora().layout()) {
        for (size_t i = 0; i < p.size; ++i)
          sum_a += std::fabs(a[p.offset + i]) * (p.name.find("lora_A") != std::string::npos);
      }
      CHECK(sum_a > 0, "A is drawn at random");
    }
  }
}

void names_and_shapes() {
  const NetConfig c = dit_config();
  Model model(cpu_backend(), c, 1);
  LoraConfig l = lora_config(c, 4, 4.0);
  l.targets = {"attn.qkv", "mlp.fc2"};
  model.enable_lora(l, 1);
  const std::vector<ParamSpec>& layout = model.lora().layout();
  CHECK(layout.size() == 8, "two targets in two blocks give 8 tensors, got %zu", layout.size());
  CHECK(layout[0].name == "blocks.0.attn.qkv.lora_A.weight", "%s", layout[0].name.c_str());
  CHECK(layout[0].shape == (std::vector<int64_t>{4, 8}), "A is (rank, in)");
  CHECK(layout[1].name == "blocks.0.attn.qkv.lora_B.weight" && layout[1].shape == (std::vector<int64_t>{24, 4}), "%s",
        layout[1].name.c_str());
  CHECK(layout[3].name == "blocks.0.mlp.fc2.lora_B.weight" && layout[3].shape == (std::vector<int64_t>{8, 4}), "%s",
        layout[3].name.c_str());
  CHECK(model.lora().param_count() == 2 * (4 * 8 + 24 * 4 + 4 * 16 + 8 * 4), "count %zu", model.lora().param_count());
  CHECK(std::fabs(model.lora().scale() - 1.0f) < 1e-7f, "scale is alpha / rank");
}

// Three flow-matching steps: the base stays bit for bit, the adapter moves, and gradient plus AdamW moments are
// adapter-sized allocations.
void frozen_base_and_adapter_sized_state() {
  for (const NetConfig& c : {mlp_config(), dit_config()}) {
    Model model(cpu_backend(), c, 2);
    perturb_base(model);
    const size_t full = model.net().param_count();
    CHECK(model.training_state_floats() == full, "a plain model holds one full gradient");
    std::vector<float> before(full), after(full);
    model.get_params(before.data());
    model.enable_lora(lora_config(c), 3);
    const size_t n = model.lora().param_count();
    CHECK(n < full / 2, "the adapter (%zu) is smaller than the network (%zu)", n, full);
    Batch in(c, 4);
    FlowMatchingOptions o = test::flow_matching_options();
    o.optimizer.lr = 1e-2;
    o.optimizer.weight_decay = 0.1;
    for (int s = 0; s < 3; ++s) model.flow_matching_step(in.x.data(), in.tokens.data(), 4, o);
    model.get_params(after.data());
    CHECK(before == after, "the frozen base changed");
    CHECK(model.training_state_floats() == 3 * n, "gradient + moments hold %zu floats, want 3 × %zu",
          model.training_state_floats(), n);
    std::vector<float> adapter(n);
    model.get_adapter(adapter.data());
    double b_norm = 0;
    for (const ParamSpec& p : model.lora().layout()) {
      if (p.name.find("lora_B") == std::string::npos) continue;
      for (size_t i = 0; i < p.size; ++i) b_norm += std::fabs(adapter[p.offset + i]);
    }
    CHECK(b_norm > 0, "B did not train");
  }
}

// DiffusionNFT over adapter sets: θ_old and θ_ref are adapter copies, the soft update blends adapters only.
void nft_with_adapter_sets() {
  const NetConfig c = mlp_config();
  const int B = 5;
  Model model(cpu_backend(), c, 6);
  perturb_base(model);
  std::vector<float> before(model.net().param_count()), after(before.size());
  model.get_params(before.data());
  model.enable_lora(lora_config(c), 7);
  model.copy_params(ParamSet::kOld, ParamSet::kTheta);
  model.copy_params(ParamSet::kRef, ParamSet::kTheta);
  CHECK(model.has_params(ParamSet::kOld) && !model.has_params(ParamSet::kEma), "adapter sets exist as copied");
  Batch in(c, B);
  std::vector<float> r(B);
  for (int b = 0; b < B; ++b) r[b] = static_cast<float>(b) / (B - 1);
  NftStepOptions o = test::nft_step_options();
  o.loss.kl_coef = 0.1f;
  o.optimizer.lr = 1e-2;
  for (int s = 0; s < 2; ++s) {
    model.nft_step(in.x.data(), in.tokens.data(), r.data(), B, o);
    model.blend_params(ParamSet::kOld, 0.5, ParamSet::kTheta);
  }
  model.get_params(after.data());
  CHECK(before == after, "the frozen base changed");
  const size_t n = model.lora().param_count();
  std::vector<float> theta(n), old(n), ref(n);
  model.get_adapter(theta.data());
  model.get_adapter(old.data(), ParamSet::kOld);
  model.get_adapter(ref.data(), ParamSet::kRef);
  CHECK(theta != old && old != ref, "θ, θ_old and θ_ref adapters differ after training");
  const std::vector<float> v_old = in.velocity(model, ParamSet::kOld), v = in.velocity(model);
  CHECK(v_old != v, "the old adapter set gives its own velocity");
  bool threw = false;
  try {
    model.set_params(before.data(), ParamSet::kOld);
  } catch (const Error& e) {
    threw = e.kind() == Error::Kind::kState;
  }
  CHECK(threw, "a base θ_old cannot be set beside adapters");
}

void merge_matches_unmerged() {
  for (const NetConfig& c : {mlp_config(), dit_config()}) {
    Model model(cpu_backend(), c, 8);
    model.enable_lora(lora_config(c), 9);
    perturb(model);
    Batch in(c, 3);
    const std::vector<float> adapted = in.velocity(model);
    model.merge_lora();
    CHECK(!model.has_lora() && model.training_state_floats() == model.net().param_count(), "merge unloads");
    const std::vector<float> merged = in.velocity(model);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < merged.size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::fabs(merged[i] - adapted[i])));
      norm = std::max(norm, static_cast<double>(std::fabs(adapted[i])));
    }
    CHECK(diff <= 1e-5 * std::max(1.0, norm), "merged differs from unmerged by %g (scale %g)", diff, norm);
  }
}

void bad_configs_change_nothing() {
  const NetConfig c = mlp_config();
  Model model(cpu_backend(), c, 1);
  auto message = [&](LoraConfig l) -> std::string {
    try {
      model.enable_lora(l, 1);
    } catch (const Error& e) {
      return e.kind() == Error::Kind::kRange ? e.what() : "wrong kind";
    }
    return "";
  };
  LoraConfig l = lora_config(c);
  l.rank = 0;
  CHECK(message(l).find("lora.rank") == 0, "%s", message(l).c_str());
  l = lora_config(c);
  l.targets = {"attn.qkv"};
  CHECK(message(l).find("unknown module 'attn.qkv'") != std::string::npos, "%s", message(l).c_str());
  l.targets = {"fc1", "fc1"};
  CHECK(message(l).find("repeated") != std::string::npos, "%s", message(l).c_str());
  l.targets = {};
  CHECK(message(l).find("lora.targets") == 0, "%s", message(l).c_str());
  CHECK(!model.has_lora(), "a rejected config attached adapters");
}

}  // namespace

int main() {
  return test::run({
      {"MLP adapter backward matches finite differences", mlp_adapter_gradients},
      {"DiT adapter backward matches finite differences", dit_adapter_gradients},
      {"a fresh adapter leaves outputs bit-identical", fresh_adapter_changes_nothing},
      {"adapter tensor names and shapes", names_and_shapes},
      {"frozen base, adapter-sized gradient and AdamW state", frozen_base_and_adapter_sized_state},
      {"DiffusionNFT over adapter sets", nft_with_adapter_sets},
      {"merged adapter matches unmerged", merge_matches_unmerged},
      {"bad LoRA configs are rejected and change nothing", bad_configs_change_nothing},
  });
}
