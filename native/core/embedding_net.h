// The time + condition embedding every architecture shares (docs/network.md):
//   se = silu(time_mlp.fc2(silu(time_mlp.fc1(features(t)))) + Σ_l cond_embed[l, token_l])
// over the first five tensors of every layout.
#pragma once

#include <vector>

#include "core/backend.h"
#include "core/net_config.h"

namespace dnft {

// Layout indices of the embedding's tensors (weights; the bias follows its weight).
constexpr int kTimeFc1 = 0, kTimeFc2 = 2, kCondEmbed = 4, kEmbeddingParams = 5;

struct EmbeddingActivations {
  float *tf, *te1, *te1a, *e, *ce, *se;  // (B, F), then (B, W) each

  template <typename Take>
  void assign(Take&& take, const NetConfig& c, size_t B) {
    tf = take(B * c.time_features);
    te1 = take(B * c.width);
    te1a = take(B * c.width);
    e = take(B * c.width);
    ce = take(B * c.width);
    se = take(B * c.width);
  }
};

// Fills every activation, se last.
void embedding_forward(Backend& be, const NetConfig& c, const std::vector<ParamSpec>& layout,
                       const EmbeddingActivations& a, const float* params, const float* t, const int32_t* tokens,
                       int B);

// Accumulates the embedding's parameter gradients from dse (B, W); scratch0..2 (B, W) are overwritten.
void embedding_backward(Backend& be, const NetConfig& c, const std::vector<ParamSpec>& layout,
                        const EmbeddingActivations& a, const float* params, float* grads, const int32_t* tokens,
                        const float* dse, int B, float* scratch0, float* scratch1, float* scratch2);

}  // namespace dnft
