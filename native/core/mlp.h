// The residual-MLP velocity network v(x, t, cond) of docs/network.md (arch 'mlp'): its forward and backward pass,
// written once against the Backend interface, over one flat parameter buffer.
#pragma once

#include <memory>

#include "core/network.h"

namespace dnft {

class MlpNet final : public Network {
 public:
  explicit MlpNet(const NetConfig& config) : Network(config) {}

  std::unique_ptr<NetWorkspace> make_workspace() const override;
  void forward(Backend& backend, NetWorkspace& ws, const NetParams& params, const float* x, const float* t,
               const int32_t* tokens, int B, float* out) const override;
  void backward(Backend& backend, NetWorkspace& ws, const NetParams& params, const NetGrads& grads, const float* x,
                const int32_t* tokens, const float* dout, int B, float* dx) const override;
};

}  // namespace dnft
