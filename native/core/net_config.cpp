#include "core/net_config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace dnft {

namespace {

[[noreturn]] void fail(const std::string& message) { throw Error(Error::Kind::kRange, "config." + message); }

void check_positive(const char* name, int value, int low) {
  if (value < low)
    fail(std::string(name) + " must be at least " + std::to_string(low) + ", got " + std::to_string(value));
}

}  // namespace

// The user-facing limits of every field are lib/options/net-config.ts's; these are the conditions the indexing below
// and in the networks relies on: positive sizes, activations whose widths fit an int, and the DiT's exact shapes.
void validate(const NetConfig& c) {
  check_positive("dataDim", c.data_dim, 1);
  check_positive("width", c.width, 1);
  check_positive("depth", c.depth, 0);
  check_positive("mlpRatio", c.mlp_ratio, 1);
  check_positive("timeFeatures", c.time_features, 2);
  check_positive("vocabSize", c.vocab_size, 1);
  check_positive("condSlots", c.cond_slots, 1);
  if (c.time_features % 2 != 0) fail("timeFeatures must be even (sin and cos pairs)");
  const int64_t widest = std::max({static_cast<int64_t>(c.mlp_ratio) * c.width, int64_t{6} * c.width,
                                   static_cast<int64_t>(c.cond_slots) * c.vocab_size * c.width});
  if (widest > std::numeric_limits<int>::max()) fail("sizes overflow: a layer would have over 2^31 values per row");
  if (c.arch != Arch::kDit) return;
  check_positive("imageSize", c.image_size, 1);
  check_positive("channels", c.channels, 1);
  check_positive("patch", c.patch, 1);
  check_positive("heads", c.heads, 1);
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
  const int64_t tokens = static_cast<int64_t>(c.image_size / c.patch) * (c.image_size / c.patch);
  if (tokens * c.width > std::numeric_limits<int>::max()) fail("sizes overflow: tokens · width exceeds 2^31");
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
