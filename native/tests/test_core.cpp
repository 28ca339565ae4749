// Tests of the backend-independent core on the CPU backend: Philox known answers, the network's backward against
// central finite differences, and the flow-matching step's determinism and gradient accumulation.
#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/guidance.h"
#include "core/math/philox.h"
#include "core/model.h"
#include "core/network.h"
#include "tests/check.h"
#include "tests/net_gradients.h"
#include "tests/options.h"

using namespace dnft;

namespace {

// Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
void philox_known_answers() {
  struct Kat {
    PhiloxBlock counter;
    uint32_t key0, key1;
    PhiloxBlock expect;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
       0xffffffffu,
       0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
       0xa4093822u,
       0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const Kat& k : kats) {
    const PhiloxBlock out = philox4x32_10(k.counter, k.key0, k.key1);
    for (int i = 0; i < 4; ++i) CHECK(out.v[i] == k.expect.v[i], "word %d: %08x != %08x", i, out.v[i], k.expect.v[i]);
  }
}

void philox_normal_moments() {
  const size_t n = 1 << 18;
  std::vector<float> x(n);
  cpu_backend().fill_normal(x.data(), n, 42, kStreamUser, 0, 1.0f);
  double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= n;
  for (float v : x) var += (v - mean) * (v - mean);
  var /= n;
  CHECK(std::fabs(mean) < 0.01, "mean %f", mean);
  CHECK(std::fabs(var - 1.0) < 0.01, "variance %f", var);
}

NetConfig small_config() {
  NetConfig c;
  c.data_dim = 5;
  c.width = 12;
  c.depth = 2;
  c.mlp_ratio = 3;
  c.time_features = 8;
  c.vocab_size = 7;
  c.cond_slots = 3;
  return c;
}

void backward_matches_finite_differences() { test::check_network_gradients(small_config(), 7); }

// Guidance::forward against its definition s·v(x, t, c) + (1 − s)·v(x, t, null) from two separate passes, and
// Guidance::backward against finite differences of Σ v·dv for every parameter tensor, at a scale ≠ 1.
void guidance_matches_definition_and_finite_differences() {
  const NetConfig c = small_config();
  const int B = 5, D = c.data_dim, L = c.cond_slots;
  const double scale = 2.5;
  Backend& be = cpu_backend();
  const std::unique_ptr<Network> net = make_network(c);
  const std::unique_ptr<NetWorkspace> ws = net->make_workspace();
  const size_t n = net->param_count();
  std::vector<float> params(n), noise(n);
  net->init_params(be, params.data(), 3);
  be.fill_normal(noise.data(), n, 9, kStreamUser, 0, 0.3f);
  for (size_t i = 0; i < n; ++i) params[i] += noise[i];

  std::vector<float> x(static_cast<size_t>(B) * D), t(2 * B), dv(x.size());
  be.fill_normal(x.data(), x.size(), 1, kStreamUser, 0, 1.0f);
  be.fill_uniform(t.data(), B, 2, kStreamUser, 0, 0.0f, 1.0f);
  std::copy(t.begin(), t.begin() + B, t.begin() + B);
  be.fill_normal(dv.data(), dv.size(), 4, kStreamUser, 0, 1.0f);
  std::vector<int32_t> tokens(2 * static_cast<size_t>(B) * L, 0);  // the null rows' tokens stay 0
  for (int i = 0; i < B * L; ++i) tokens[i] = 1 + i % (c.vocab_size - 1);

  Guidance guidance;
  std::vector<float> v(x.size()), v_cond(x.size()), v_null(x.size());
  net->forward(be, *ws, params.data(), x.data(), t.data(), tokens.data(), B, v_cond.data());
  net->forward(be, *ws, params.data(), x.data(), t.data() + B, tokens.data() + B * L, B, v_null.data());
  guidance.forward(be, *net, *ws, params.data(), x.data(), t.data(), tokens.data(), B, scale, v.data());
  double err = 0, norm = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double expect = scale * v_cond[i] + (1.0 - scale) * v_null[i];
    err = std::max(err, std::fabs(v[i] - expect));
    norm = std::max(norm, std::fabs(expect));
  }
  CHECK(err <= 1e-6 * norm, "guided velocity differs from its definition by %g (max |v| %g)", err, norm);

  std::vector<float> grads(n, 0.0f);
  guidance.backward(be, *net, *ws, params.data(), grads.data(), x.data(), tokens.data(), dv.data(), B, scale);
  for (const ParamSpec& p : net->layout()) {
    test::check_directional(
        p.name.c_str(), params, p.offset, p.size, grads.data() + p.offset,
        [&] {
          guidance.forward(be, *net, *ws, params.data(), x.data(), t.data(), tokens.data(), B, scale, v.data());
          double sum = 0;
          for (size_t i = 0; i < v.size(); ++i) sum += static_cast<double>(v[i]) * dv[i];
          return sum;
        },
        21 + p.offset, 3e-3, 5e-3);  // the two weighted passes (2.5 and −1.5) make the difference noisier
  }
}

std::vector<float> train(int steps, int micro_batch) {
  const NetConfig c = small_config();
  const int B = 12;
  Model model(cpu_backend(), c, 5);
  std::vector<float> x0(B * c.data_dim);
  std::vector<int32_t> tokens(B * c.cond_slots, 2);
  FlowMatchingOptions o = test::flow_matching_options();
  o.seed = 77;
  o.micro_batch = micro_batch;
  o.cond_dropout = 0.25;
  o.optimizer.lr = 1e-2;
  for (int s = 0; s < steps; ++s) {
    cpu_backend().fill_normal(x0.data(), x0.size(), 100 + s, kStreamUser, 0, 1.0f);
    model.flow_matching_step(x0.data(), tokens.data(), B, o);
  }
  std::vector<float> params(model.net().param_count());
  model.get_params(params.data());
  return params;
}

void flow_matching_is_deterministic() {
  const std::vector<float> a = train(5, 0), b = train(5, 0);
  CHECK(a == b, "two runs from the same seed differ");
}

void gradient_accumulation_matches_whole_batch() {
  const std::vector<float> whole = train(3, 0), chunks = train(3, 5);
  double diff = 0, norm = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    diff += (whole[i] - chunks[i]) * (whole[i] - chunks[i]);
    norm += whole[i] * whole[i];
  }
  CHECK(std::sqrt(diff / norm) < 1e-5, "relative difference %g", std::sqrt(diff / norm));
}

// DiffusionNFT steps after a few flow-matching steps (so v_θ ≠ 0), θ_old one soft update behind.
std::vector<float> train_nft(int micro_batch, bool grid_times) {
  const NetConfig c = small_config();
  const int B = 7;
  Model model(cpu_backend(), c, 6);
  std::vector<float> x0(B * c.data_dim), r(B);
  std::vector<int32_t> tokens(B * c.cond_slots, 3);
  FlowMatchingOptions pre = test::flow_matching_options();
  pre.optimizer.lr = 1e-2;
  cpu_backend().fill_normal(x0.data(), x0.size(), 9, kStreamUser, 0, 1.0f);
  model.copy_params(ParamSet::kOld, ParamSet::kTheta);
  model.copy_params(ParamSet::kRef, ParamSet::kTheta);
  for (int s = 0; s < 3; ++s) model.flow_matching_step(x0.data(), tokens.data(), B, pre);
  NftStepOptions o = test::nft_step_options();
  o.seed = 5;
  o.micro_batch = micro_batch;
  o.times_per_sample = 3;
  if (grid_times) o.times = {1.0, 0.75, 0.5, 0.25};
  o.loss.kl_coef = 0.1f;
  o.optimizer.lr = 1e-2;
  for (int b = 0; b < B; ++b) r[b] = static_cast<float>(b) / (B - 1);
  for (int s = 0; s < 2; ++s) {
    model.nft_step(x0.data(), tokens.data(), r.data(), B, o);
    model.blend_params(ParamSet::kOld, 0.5, ParamSet::kTheta);
  }
  std::vector<float> params(model.net().param_count());
  model.get_params(params.data());
  return params;
}

void nft_step_accumulates_and_repeats() {
  for (bool grid : {true, false}) {
    const std::vector<float> whole = train_nft(0, grid), chunks = train_nft(4, grid), again = train_nft(0, grid);
    CHECK(whole == again, "two DiffusionNFT runs from the same seed differ");
    double diff = 0, norm = 0;
    for (size_t i = 0; i < whole.size(); ++i) {
      diff += (whole[i] - chunks[i]) * (whole[i] - chunks[i]);
      norm += whole[i] * whole[i];
    }
    CHECK(std::sqrt(diff / norm) < 1e-5, "micro-batches change the step: relative difference %g",
          std::sqrt(diff / norm));
  }
}

void nft_step_needs_old_params() {
  Model model(cpu_backend(), small_config(), 1);
  std::vector<float> x0(small_config().data_dim), r(1, 0.5f);
  std::vector<int32_t> tokens(small_config().cond_slots, 0);
  bool threw = false;
  try {
    model.nft_step(x0.data(), tokens.data(), r.data(), 1, test::nft_step_options());
  } catch (const Error& e) {
    threw = e.kind() == Error::Kind::kState;
  }
  CHECK(threw, "nft_step without θ_old must throw a state error");
  CHECK(model.step() == 0, "a failed step changed the step count");
}

// The MemAvailable of /proc/meminfo in bytes, read here independently of the backend's own reading.
size_t mem_available_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  size_t kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") return kib * 1024;
    meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

// An allocation above the memory the system has available is refused with a backend error: on an overcommitting
// system the plain allocation succeeds (it is below the physical memory) and would swap or meet the OOM killer only
// when filled. A large one that fits is served.
void host_allocation_above_available_memory_is_refused() {
  Backend& be = cpu_backend();
  const size_t available = mem_available_bytes();
  CHECK(available > 0, "no MemAvailable in /proc/meminfo");
  bool refused = false;
  try {
    be.release(be.alloc(available + (size_t{256} << 20)));
  } catch (const Error& e) {
    refused = e.kind() == Error::Kind::kBackend && std::string(e.what()).find("out of host memory") == 0;
  }
  CHECK(refused, "an allocation 256 MiB above MemAvailable (%zu bytes) must be refused", available);
  void* fits = be.alloc(size_t{64} << 20);
  CHECK(fits != nullptr, "a 64 MiB allocation must succeed");
  be.release(fits);
}

}  // namespace

int main() {
  return test::run({
      {"philox known answers", philox_known_answers},
      {"philox normal moments", philox_normal_moments},
      {"backward matches finite differences", backward_matches_finite_differences},
      {"guidance: forward by definition, backward by finite differences",
       guidance_matches_definition_and_finite_differences},
      {"flow matching is deterministic", flow_matching_is_deterministic},
      {"gradient accumulation matches the whole batch", gradient_accumulation_matches_whole_batch},
      {"DiffusionNFT step: accumulation and determinism", nft_step_accumulates_and_repeats},
      {"DiffusionNFT step needs θ_old", nft_step_needs_old_params},
      {"a host allocation above the available memory is refused", host_allocation_above_available_memory_is_refused},
  });
}
