#include "core/net_config.h"

#include <cmath>

namespace dnft {

namespace {

void check_field(const char* name, int value, int low, int high) {
  if (value < low || value > high) {
    throw Error(Error::Kind::kRange, std::string("config.") + name + " must be an integer in [" + std::to_string(low) +
                                         ", " + std::to_string(high) + "], got " + std::to_string(value));
  }
}

}  // namespace

void validate(const NetConfig& c) {
  check_field("dataDim", c.data_dim, 1, 1 << 20);
  check_field("width", c.width, 1, 1 << 16);
  check_field("depth", c.depth, 0, 256);
  check_field("mlpRatio", c.mlp_ratio, 1, 64);
  check_field("timeFeatures", c.time_features, 2, 4096);
  if (c.time_features % 2 != 0) throw Error(Error::Kind::kRange, "config.timeFeatures must be even");
  check_field("vocabSize", c.vocab_size, 1, 1 << 20);
  check_field("condSlots", c.cond_slots, 1, 1024);
}

std::vector<ParamSpec> param_layout(const NetConfig& c) {
  validate(c);
  std::vector<ParamSpec> layout;
  const int64_t W = c.width, F = c.time_features, D = c.data_dim, E = static_cast<int64_t>(c.mlp_ratio) * c.width;
  auto add = [&](std::string name, std::vector<int64_t> shape, bool decay, ParamInit init, float scale) {
    ParamSpec spec{std::move(name), std::move(shape), 0, 1, decay, init, scale};
    for (int64_t dim : spec.shape) spec.size *= static_cast<size_t>(dim);
    spec.offset = layout.empty() ? 0 : layout.back().offset + layout.back().size;
    layout.push_back(std::move(spec));
  };
  auto add_linear = [&](const std::string& name, int64_t out, int64_t in, bool zero) {
    add(name + ".weight", {out, in}, true, zero ? ParamInit::kZero : ParamInit::kUniform,
        zero ? 0.0f : 1.0f / std::sqrt(static_cast<float>(in)));
    add(name + ".bias", {out}, false, ParamInit::kZero, 0.0f);
  };
  add_linear("time_mlp.fc1", W, F, false);
  add_linear("time_mlp.fc2", W, W, false);
  add("cond_embed.weight", {c.cond_slots, c.vocab_size, W}, false, ParamInit::kNormal, 0.02f);
  add_linear("input_proj", W, D, false);
  for (int i = 0; i < c.depth; ++i) {
    const std::string block = "blocks." + std::to_string(i);
    add_linear(block + ".ada", 2 * W, W, true);  // adaLN-Zero: every block starts as the identity
    add_linear(block + ".fc1", E, W, false);
    add_linear(block + ".fc2", W, E, false);
  }
  add_linear("output_proj", D, W, true);
  return layout;
}

size_t param_count(const std::vector<ParamSpec>& layout) {
  return layout.empty() ? 0 : layout.back().offset + layout.back().size;
}

}  // namespace dnft
