// The interface every velocity-network architecture implements (NetConfig::arch): the MLP of docs/network.md
// (core/mlp.h) and the DiT of docs/dit.md (core/dit.h). Model, Sampler and the trainers' steps only see
// this interface.
#pragma once

#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/buffer.h"
#include "core/net_config.h"

namespace dnft {

// Activations saved by a forward for the backward, plus scratch for the backward; each architecture has its own.
class NetWorkspace {
 public:
  virtual ~NetWorkspace() = default;
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

  // Writes the initial parameters of the layout's table, drawn from Philox stream kStreamInit of `seed`.
  void init_params(Backend& backend, float* params, uint64_t seed) const;

  virtual std::unique_ptr<NetWorkspace> make_workspace() const = 0;

  // out (B, D) = v(x (B, D), t (B), tokens (B, L)). Saves activations in ws (from make_workspace) for a backward.
  virtual void forward(Backend& backend, NetWorkspace& ws, const float* params, const float* x, const float* t,
                       const int32_t* tokens, int B, float* out) const = 0;

  // Backward of the last forward on ws: grads (flat, +=), dx (B, D) overwritten when not null.
  virtual void backward(Backend& backend, NetWorkspace& ws, const float* params, float* grads, const float* x,
                        const int32_t* tokens, const float* dout, int B, float* dx) const = 0;

 protected:
  const float* param(const float* base, int index) const { return base + layout_[index].offset; }
  float* param(float* base, int index) const { return base + layout_[index].offset; }

 private:
  NetConfig config_;
  std::vector<ParamSpec> layout_;
  size_t param_count_;
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
