#include "core/embedding_net.h"

namespace dnft {

void embedding_forward(Backend& be, const NetConfig& c, const std::vector<ParamSpec>& layout,
                       const EmbeddingActivations& a, const float* params, const float* t, const int32_t* tokens,
                       int B) {
  const int W = c.width, F = c.time_features;
  const size_t BW = static_cast<size_t>(B) * W;
  auto p = [&](int index) { return params + layout[index].offset; };
  be.time_features(a.tf, t, B, F);
  be.linear_forward(a.te1, a.tf, p(kTimeFc1), p(kTimeFc1 + 1), B, F, W);
  be.silu_forward(a.te1a, a.te1, BW);
  be.linear_forward(a.e, a.te1a, p(kTimeFc2), p(kTimeFc2 + 1), B, W, W);
  be.cond_embed_forward(a.ce, tokens, p(kCondEmbed), B, c.cond_slots, c.vocab_size, W);
  be.add_inplace(a.e, a.ce, BW);
  be.silu_forward(a.se, a.e, BW);
}

void embedding_backward(Backend& be, const NetConfig& c, const std::vector<ParamSpec>& layout,
                        const EmbeddingActivations& a, const float* params, float* grads, const int32_t* tokens,
                        const float* dse, int B, float* scratch0, float* scratch1, float* scratch2) {
  const int W = c.width, F = c.time_features;
  const size_t BW = static_cast<size_t>(B) * W;
  auto p = [&](int index) { return params + layout[index].offset; };
  auto g = [&](int index) { return grads + layout[index].offset; };
  // de = dse · silu'(e) flows into both the time MLP and the condition embedding.
  float* de = scratch0;
  be.silu_backward(de, dse, a.e, BW);
  be.cond_embed_backward(g(kCondEmbed), de, tokens, B, c.cond_slots, c.vocab_size, W);
  be.linear_backward(scratch1, g(kTimeFc2), g(kTimeFc2 + 1), de, a.te1a, p(kTimeFc2), B, W, W);
  be.silu_backward(scratch2, scratch1, a.te1, BW);
  be.linear_backward(nullptr, g(kTimeFc1), g(kTimeFc1 + 1), scratch2, a.tf, p(kTimeFc1), B, F, W);
}

}  // namespace dnft
