// The velocity network's configuration and its flat parameter layout (docs/network.md, docs/dit.md).
#pragma once

#include <string>
#include <vector>

#include "core/common.h"

namespace dnft {

// kMlp: the residual MLP of docs/network.md; kDit: the diffusion transformer of docs/dit.md.
enum class Arch { kMlp, kDit };

struct NetConfig {
  Arch arch = Arch::kMlp;
  int data_dim = 2;        // D
  int width = 128;         // W
  int depth = 3;           // residual blocks
  int mlp_ratio = 4;       // e
  int time_features = 32;  // F (even)
  int vocab_size = 16;     // V, token 0 is the null/pad token
  int cond_slots = 1;      // L
  // kDit only: images of image_size² pixels with `channels` channels, flattened HWC (data_dim = image_size²·channels),
  // cut into patch×patch patches; attention with `heads` heads of width / heads channels.
  int image_size = 16;
  int channels = 3;
  int patch = 2;
  int heads = 4;
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

// Throws dnft::Error (kRange) naming the first field out of range.
void validate(const NetConfig& config);

// The flat layout: every parameter tensor, in order, back to back.
std::vector<ParamSpec> param_layout(const NetConfig& config);

size_t param_count(const std::vector<ParamSpec>& layout);

}  // namespace dnft
