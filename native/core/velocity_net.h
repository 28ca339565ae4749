// The conditional velocity network v(x, t, cond) of docs/network.md: its forward and backward pass, written once
// against the Backend interface, over one flat parameter buffer.
#pragma once

#include <vector>

#include "core/backend.h"
#include "core/buffer.h"
#include "core/net_config.h"

namespace dnft {

// Activations saved by the forward for the backward, plus scratch for the backward, for batches up to capacity.
class NetWorkspace {
 public:
  void reserve(Backend& backend, const NetConfig& config, int batch);
  int capacity() const { return capacity_; }

 private:
  friend class VelocityNet;
  struct Block {
    float* mod;   // (B, 2W) adaLN [scale | shift]
    float* h;     // (B, W) block input
    float* mean;  // (B)
    float* rstd;  // (B)
    float* m;     // (B, W) modulated layer norm
    float* u;     // (B, eW) fc1 output
    float* a;     // (B, eW) silu(u)
  };
  Buffer<float> arena_;
  int capacity_ = 0;
  float *tf_ = nullptr, *te1_ = nullptr, *te1a_ = nullptr, *e_ = nullptr, *se_ = nullptr, *ce_ = nullptr;
  float *h_last_ = nullptr, *final_mean_ = nullptr, *final_rstd_ = nullptr, *final_n_ = nullptr;
  std::vector<Block> blocks_;
  // backward scratch
  float *dh_ = nullptr, *dm_ = nullptr, *da_ = nullptr, *du_ = nullptr, *dmod_ = nullptr, *dse_ = nullptr,
        *dtmp_ = nullptr;
};

class VelocityNet {
 public:
  explicit VelocityNet(const NetConfig& config);

  const NetConfig& config() const { return config_; }
  const std::vector<ParamSpec>& layout() const { return layout_; }
  size_t param_count() const { return param_count_; }

  // Writes the initial parameters (docs/network.md) drawn from Philox stream kStreamInit of `seed`.
  void init_params(Backend& backend, float* params, uint64_t seed) const;

  // out (B, D) = v(x (B, D), t (B), tokens (B, L)). Saves activations in ws for a following backward.
  void forward(Backend& backend, NetWorkspace& ws, const float* params, const float* x, const float* t,
               const int32_t* tokens, int B, float* out) const;

  // Backward of the last forward on ws: grads (flat, +=), dx (B, D) overwritten when not null.
  void backward(Backend& backend, NetWorkspace& ws, const float* params, float* grads, const float* x,
                const int32_t* tokens, const float* dout, int B, float* dx) const;

 private:
  const float* param(const float* base, int index) const { return base + layout_[index].offset; }
  float* param(float* base, int index) const { return base + layout_[index].offset; }

  NetConfig config_;
  std::vector<ParamSpec> layout_;
  size_t param_count_;
};

}  // namespace dnft
