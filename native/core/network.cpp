#include "core/network.h"

#include "core/dit.h"
#include "core/math/philox.h"
#include "core/mlp.h"

namespace dnft {

Network::Network(const NetConfig& config)
    : config_(config), layout_(param_layout(config)), param_count_(dnft::param_count(layout_)) {}

void Network::init_params(Backend& backend, float* params, uint64_t seed) const {
  for (const ParamSpec& p : layout_) {
    float* dst = params + p.offset;
    switch (p.init) {
      case ParamInit::kZero:
        backend.fill(dst, 0.0f, p.size);
        break;
      case ParamInit::kUniform:
        backend.fill_uniform(dst, p.size, seed, kStreamInit, p.offset, -p.init_scale, p.init_scale);
        break;
      case ParamInit::kNormal:
        backend.fill_normal(dst, p.size, seed, kStreamInit, p.offset, p.init_scale);
        break;
    }
  }
}

std::unique_ptr<Network> make_network(const NetConfig& config) {
  if (config.arch == Arch::kDit) return std::make_unique<DiT>(config);
  return std::make_unique<MlpNet>(config);
}

}  // namespace dnft
