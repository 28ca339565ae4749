// The interface every velocity-network architecture implements (NetConfig::arch): the MLP of docs/network.md
// (core/mlp.h) and the DiT of docs/dit.md (core/dit.h). Model, Sampler and the trainers' steps only see
// this interface.
#pragma once

#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/buffer.h"
#include "core/lora.h"
#include "core/net_config.h"

namespace dnft {

// Activations saved by a forward for the backward, plus scratch for the backward; each architecture has its own.
class NetWorkspace {
 public:
  virtual ~NetWorkspace() = default;
  LoraWorkspace lora;
};

class Network {
 public:
  explicit Network(const NetConfig& config);
  virtual ~Network() = default;
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  const NetConfig& config() const { return config_; }
  const std::vector<ParamSpec>& layout() const { return layout_; }
  size_t param_count() const { return param_count_; }
  // The adapters of core/lora.h, or null: passes then read NetParams::adapter and ignore it when null.
  const LoraLayout* lora() const { return lora_.get(); }
  void set_lora(std::unique_ptr<LoraLayout> lora) { lora_ = std::move(lora); }

  // Writes the initial parameters of the layout's table, drawn from Philox stream kStreamInit of `seed`.
  void init_params(Backend& backend, float* params, uint64_t seed) const;

  virtual std::unique_ptr<NetWorkspace> make_workspace() const = 0;

  // out (B, D) = v(x (B, D), t (B), tokens (B, L)). Saves activations in ws (from make_workspace) for a backward.
  virtual void forward(Backend& backend, NetWorkspace& ws, const NetParams& params, const float* x, const float* t,
                       const int32_t* tokens, int B, float* out) const = 0;

  // Backward of the last forward on ws: grads (flat, +=; grads.base null for a frozen base), dx (B, D) overwritten
  // when not null.
  virtual void backward(Backend& backend, NetWorkspace& ws, const NetParams& params, const NetGrads& grads,
                        const float* x, const int32_t* tokens, const float* dout, int B, float* dx) const = 0;

 protected:
  const float* param(const float* base, int index) const { return base + layout_[index].offset; }
  float* param(float* base, int index) const { return base + layout_[index].offset; }
  // The linear whose weight is at layout index `weight` (bias next), with its adapter when it has one.
  void linear_forward(Backend& be, NetWorkspace& ws, const NetParams& params, int weight, float* out, const float* in,
                      int rows) const {
    adapted_linear_forward(be, ws.lora, lora_.get(), layout_, params, weight, out, in, rows);
  }
  void linear_backward(Backend& be, NetWorkspace& ws, const NetParams& params, const NetGrads& grads, int weight,
                       float* din, const float* dout, const float* in, int rows) const {
    adapted_linear_backward(be, ws.lora, lora_.get(), layout_, params, grads, weight, din, dout, in, rows);
  }

 private:
  NetConfig config_;
  std::vector<ParamSpec> layout_;
  size_t param_count_;
  std::unique_ptr<LoraLayout> lora_;
};

// The network of config.arch (validates the config).
std::unique_ptr<Network> make_network(const NetConfig& config);

// One backend allocation carved into a workspace's arrays: assign(take) runs twice, first to count the floats, then
// to hand out pointers; take(n) returns the next n floats.
template <typename Assign>
Buffer<float> carve_arena(Backend& backend, Assign&& assign) {
  size_t total = 0;
  assign([&](size_t n) -> float* {
    total += n;
    return nullptr;
  });
  Buffer<float> arena(backend, total);
  float* cursor = arena.get();
  assign([&](size_t n) {
    float* p = cursor;
    cursor += n;
    return p;
  });
  return arena;
}

}  // namespace dnft
