// The diffusion transformer v(x, t, cond) of docs/dit.md (arch 'dit'): patchify, patch embedding plus a fixed 2-D
// sin-cos position embedding, transformer blocks with adaLN-Zero modulation from the shared time + condition
// embedding, a final adaLN and linear, unpatchify. Written once against the Backend interface.
#pragma once

#include <memory>
#include <vector>

#include "core/network.h"

namespace dnft {

class DiT final : public Network {
 public:
  explicit DiT(const NetConfig& config) : Network(config) {}

  std::unique_ptr<NetWorkspace> make_workspace() const override;
  void forward(Backend& backend, NetWorkspace& ws, const NetParams& params, const float* x, const float* t,
               const int32_t* tokens, int B, float* out) const override;
  void backward(Backend& backend, NetWorkspace& ws, const NetParams& params, const NetGrads& grads, const float* x,
                const int32_t* tokens, const float* dout, int B, float* dx) const override;
};

// The fixed position embedding (T, W) of a grid × grid token grid (docs/dit.md), computed in double.
std::vector<float> sincos_position_embedding(int grid, int width);

}  // namespace dnft
