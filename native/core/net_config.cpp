#include "core/net_config.h"

#include <cmath>
#include <utility>

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
  if (c.arch != Arch::kDit) return;
  check_field("imageSize", c.image_size, 1, 4096);
  check_field("channels", c.channels, 1, 4096);
  check_field("patch", c.patch, 1, c.image_size);
  check_field("heads", c.heads, 1, c.width);
  auto fail = [](const std::string& message) { throw Error(Error::Kind::kRange, "config." + message); };
  const int64_t pixels = static_cast<int64_t>(c.image_size) * c.image_size * c.channels;
  if (c.data_dim != pixels) {
    fail("dataDim must equal imageSize² · channels = " + std::to_string(pixels) + " for arch 'dit', got " +
         std::to_string(c.data_dim));
  }
  if (c.image_size % c.patch != 0) {
    fail("imageSize (" + std::to_string(c.image_size) + ") must be divisible by patch (" + std::to_string(c.patch) +
         ")");
  }
  if (c.width % c.heads != 0) {
    fail("width (" + std::to_string(c.width) + ") must be divisible by heads (" + std::to_string(c.heads) + ")");
  }
  if (c.width % 4 != 0) fail("width must be a multiple of 4 for the 2-D sin-cos position embedding");
}

namespace {

// Appends parameter tensors to a layout, back to back.
class LayoutBuilder {
 public:
  void add(std::string name, std::vector<int64_t> shape, bool decay, ParamInit init, float scale) {
    ParamSpec spec{std::move(name), std::move(shape), 0, 1, decay, init, scale};
    for (int64_t dim : spec.shape) spec.size *= static_cast<size_t>(dim);
    spec.offset = layout.empty() ? 0 : layout.back().offset + layout.back().size;
    layout.push_back(std::move(spec));
  }
  // nn.Linear(in, out): weight (out, in) U(±1/√in) or zero, bias zero.
  void add_linear(const std::string& name, int64_t out, int64_t in, bool zero) {
    add(name + ".weight", {out, in}, true, zero ? ParamInit::kZero : ParamInit::kUniform,
        zero ? 0.0f : 1.0f / std::sqrt(static_cast<float>(in)));
    add(name + ".bias", {out}, false, ParamInit::kZero, 0.0f);
  }
  // The time MLP and the condition tables, the first five tensors of both architectures.
  void add_embedding(const NetConfig& c) {
    add_linear("time_mlp.fc1", c.width, c.time_features, false);
    add_linear("time_mlp.fc2", c.width, c.width, false);
    add("cond_embed.weight", {c.cond_slots, c.vocab_size, c.width}, false, ParamInit::kNormal, 0.02f);
  }
  std::vector<ParamSpec> layout;
};

std::vector<ParamSpec> mlp_layout(const NetConfig& c) {
  LayoutBuilder b;
  const int64_t W = c.width, D = c.data_dim, E = static_cast<int64_t>(c.mlp_ratio) * c.width;
  b.add_embedding(c);
  b.add_linear("input_proj", W, D, false);
  for (int i = 0; i < c.depth; ++i) {
    const std::string block = "blocks." + std::to_string(i);
    b.add_linear(block + ".ada", 2 * W, W, true);  // adaLN-Zero: every block starts as the identity
    b.add_linear(block + ".fc1", E, W, false);
    b.add_linear(block + ".fc2", W, E, false);
  }
  b.add_linear("output_proj", D, W, true);
  return std::move(b.layout);
}

std::vector<ParamSpec> dit_layout(const NetConfig& c) {
  LayoutBuilder b;
  const int64_t W = c.width, P = static_cast<int64_t>(c.patch) * c.patch * c.channels,
                E = static_cast<int64_t>(c.mlp_ratio) * c.width;
  b.add_embedding(c);
  b.add_linear("patch_embed", W, P, false);
  for (int i = 0; i < c.depth; ++i) {
    const std::string block = "blocks." + std::to_string(i);
    b.add_linear(block + ".ada", 6 * W, W, true);  // adaLN-Zero: gates start at 0, so every block is the identity
    b.add_linear(block + ".attn.qkv", 3 * W, W, false);
    b.add_linear(block + ".attn.proj", W, W, false);
    b.add_linear(block + ".mlp.fc1", E, W, false);
    b.add_linear(block + ".mlp.fc2", W, E, false);
  }
  b.add_linear("final.ada", 2 * W, W, true);
  b.add_linear("final.linear", P, W, true);
  return std::move(b.layout);
}

}  // namespace

std::vector<ParamSpec> param_layout(const NetConfig& c) {
  validate(c);
  return c.arch == Arch::kDit ? dit_layout(c) : mlp_layout(c);
}

size_t param_count(const std::vector<ParamSpec>& layout) {
  return layout.empty() ? 0 : layout.back().offset + layout.back().size;
}

}  // namespace dnft
