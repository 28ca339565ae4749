// LoRA adapters (docs/lora.md): a chosen base linear y = W x + b becomes y = W x + b + (alpha/rank)·B(A x), with
// A (rank, in) and B (out, rank) in a flat adapter buffer of their own whose tensors are named after the base weight
// (`<module>.lora_A.weight`, `<module>.lora_B.weight`, PEFT's convention).
#pragma once

#include <string>
#include <vector>

#include "core/backend.h"
#include "core/buffer.h"
#include "core/net_config.h"

namespace dnft {

// kGaussian: A ~ N(0, (1/rank)²) as PEFT's 'gaussian'; kKaiming: A ~ U(±1/√in), PEFT's default
// kaiming_uniform(a = √5). B starts at zero either way, so a fresh adapter changes nothing.
enum class LoraInit { kGaussian, kKaiming };

// The user-facing ranges and defaults are lib/options/lora.ts's (LORA_SCHEMA); LoraLayout checks what its indexing
// needs.
struct LoraConfig {
  int rank = 1;
  double alpha = 1.0;
  // Module names inside a block: "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "ada" (DiT); "fc1", "fc2", "ada" (MLP).
  std::vector<std::string> targets;
  LoraInit init = LoraInit::kGaussian;
};

// The parameters a network pass reads: the base buffer and, when the network has adapters, the adapter buffer.
struct NetParams {
  NetParams(const float* base_params, const float* adapter_params = nullptr)  // NOLINT: a plain base converts
      : base(base_params), adapter(adapter_params) {}
  const float* base;
  const float* adapter;
};

// Where a backward accumulates parameter gradients; null skips them (a frozen base, or no adapter).
struct NetGrads {
  NetGrads(float* base_grads, float* adapter_grads = nullptr)  // NOLINT: a plain base converts
      : base(base_grads), adapter(adapter_grads) {}
  float* base;
  float* adapter;
};

// The modules a block of this base layout offers as targets ("attn.qkv", …), in order of appearance.
std::vector<std::string> lora_modules(const std::vector<ParamSpec>& base);

// Which base linears carry an adapter, and the adapter buffer's layout.
class LoraLayout {
 public:
  // Throws Error(kRange) for a rank below 1 or too large to index, an unknown or repeated target, or no target.
  LoraLayout(const LoraConfig& config, const std::vector<ParamSpec>& base);

  const LoraConfig& config() const { return config_; }
  const std::vector<ParamSpec>& layout() const { return layout_; }
  size_t param_count() const { return dnft::param_count(layout_); }
  float scale() const { return static_cast<float>(config_.alpha / config_.rank); }
  // The adapter of the base weight at layout index `weight`: the index of its A in layout() (B follows), or -1.
  int adapter_of(int weight) const { return weight < static_cast<int>(slot_.size()) ? slot_[weight] : -1; }

  // A from Philox stream kStreamLora of `seed`, B zero.
  void init_params(Backend& backend, float* adapter, uint64_t seed) const;
  // base W += (alpha/rank)·B·A for every adapted linear.
  void merge(Backend& backend, float* base, const float* adapter) const;

 private:
  LoraConfig config_;
  std::vector<ParamSpec> layout_;
  std::vector<int> slot_;            // per base layout index
  std::vector<size_t> base_offset_;  // per adapter: its base weight's offset in the base buffer
};

// Activations an adapted pass saves (A x of each adapter) and the backward's scratch, grown on demand.
class LoraWorkspace {
 public:
  std::vector<Buffer<float>> saved_ax;      // per adapter (A's layout index / 2): (rows, rank)
  Buffer<float> tmp_out, tmp_in, tmp_rank;  // (rows, N), (rows, K), (rows, rank)
};

// The linear of base layout index `weight` (its bias at weight + 1): out (rows, N) = in · Wᵀ + b, plus its adapter.
void adapted_linear_forward(Backend& be, LoraWorkspace& ws, const LoraLayout* lora, const std::vector<ParamSpec>& base,
                            const NetParams& params, int weight, float* out, const float* in, int rows);
// Its backward: din (rows, K) overwritten when not null; the base's dW, db and the adapter's dA, dB accumulate into
// grads where those are not null.
void adapted_linear_backward(Backend& be, LoraWorkspace& ws, const LoraLayout* lora, const std::vector<ParamSpec>& base,
                             const NetParams& params, const NetGrads& grads, int weight, float* din, const float* dout,
                             const float* in, int rows);

}  // namespace dnft
