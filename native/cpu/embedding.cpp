#include "core/math/time_features.h"
#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

void CpuBackend::time_features(float* out, const float* t, int B, int F) {
  const int half = F / 2;
  for (int b = 0; b < B; ++b) {
    for (int j = 0; j < 2 * half; ++j) out[static_cast<size_t>(b) * F + j] = time_feature(t[b], j, half);
  }
}

void CpuBackend::cond_embed_forward(float* out, const int32_t* tokens, const float* table, int B, int L, int V, int W) {
  global_pool().parallel_for(B, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      float* row = out + b * W;
      for (int w = 0; w < W; ++w) row[w] = 0.0f;
      for (int l = 0; l < L; ++l) {
        const float* emb = table + (static_cast<size_t>(l) * V + tokens[b * L + l]) * W;
        for (int w = 0; w < W; ++w) row[w] += emb[w];
      }
    }
  });
}

void CpuBackend::cond_embed_backward(float* dtable, const float* dout, const int32_t* tokens, int B, int L, int V,
                                     int W) {
  // Parallel over the width, so no two workers touch the same table entry.
  global_pool().parallel_for(
      W,
      [&](int64_t begin, int64_t end, int) {
        for (int b = 0; b < B; ++b) {
          for (int l = 0; l < L; ++l) {
            float* row = dtable + (static_cast<size_t>(l) * V + tokens[b * L + l]) * W;
            for (int64_t w = begin; w < end; ++w) row[w] += dout[static_cast<size_t>(b) * W + w];
          }
        }
      },
      64);
}

}  // namespace dnft::cpu
