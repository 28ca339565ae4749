// The velocity network's configuration and its flat parameter layout (docs/network.md, docs/dit.md).
#pragma once

#include <string>
#include <vector>

#include "core/common.h"

namespace dnft {

// kMlp: the residual MLP of docs/network.md; kDit: the diffusion transformer of docs/dit.md.
enum class Arch { kMlp, kDit };

// Every size is given by the caller (lib/options/net-config.ts resolves presets and limits); zero marks a field not
// set.
struct NetConfig {
  Arch arch = Arch::kMlp;
  int data_dim = 0;       // D
  int width = 0;          // W
  int depth = 0;          // residual blocks
  int mlp_ratio = 0;      // e
  int time_features = 0;  // F (even)
  int vocab_size = 0;     // V, token 0 is the null/pad token
  int cond_slots = 0;     // L
  // kDit only: images of image_size² pixels with `channels` channels, flattened HWC (data_dim = image_size²·channels),
  // cut into patch×patch patches; attention with `heads` heads of width / heads channels.
  int image_size = 0;
  int channels = 0;
  int patch = 0;
  int heads = 0;
};

enum class ParamInit { kZero, kUniform, kNormal };

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // in floats, into the flat buffer
  size_t size = 0;
  bool decay = false;  // AdamW weight decay applies
  ParamInit init = ParamInit::kZero;
  float init_scale = 0.0f;  // uniform bound or normal stddev
};

// Throws dnft::Error (kRange) naming the first field the native code cannot run with (see net_config.cpp).
void validate(const NetConfig& config);

// The flat layout: every parameter tensor, in order, back to back.
std::vector<ParamSpec> param_layout(const NetConfig& config);

size_t param_count(const std::vector<ParamSpec>& layout);

}  // namespace dnft
