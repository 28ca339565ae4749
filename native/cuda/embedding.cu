// Time features and the condition embedding. The embedding backward gives each (slot, column) to one thread that
// walks the batch in order: the same accumulation order as the CPU, with no atomics.
#include "core/math/time_features.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/elementwise.cuh"

namespace dnft::cuda {

void CudaBackend::time_features(float* out, const float* t, int B, int F) {
  const int half = F / 2;
  for_each_index(
      ctx_, static_cast<size_t>(B) * 2 * half,
      [=] __device__(size_t i) {
        const size_t b = i / (2 * half);
        const int j = static_cast<int>(i % (2 * half));
        out[b * F + j] = time_feature(t[b], j, half);
      },
      "time_features");
}

void CudaBackend::cond_embed_forward(float* out, const int32_t* tokens, const float* table, int B, int L, int V,
                                     int W) {
  for_each_index(
      ctx_, static_cast<size_t>(B) * W,
      [=] __device__(size_t i) {
        const size_t b = i / W, w = i % W;
        float sum = 0.0f;
        for (int l = 0; l < L; ++l) sum += table[(static_cast<size_t>(l) * V + tokens[b * L + l]) * W + w];
        out[i] = sum;
      },
      "cond_embed_forward");
}

void CudaBackend::cond_embed_backward(float* dtable, const float* dout, const int32_t* tokens, int B, int L, int V,
                                      int W) {
  for_each_index(
      ctx_, static_cast<size_t>(L) * W,
      [=] __device__(size_t i) {
        const size_t l = i / W, w = i % W;
        for (int b = 0; b < B; ++b) {
          dtable[(l * V + tokens[static_cast<size_t>(b) * L + l]) * W + w] += dout[static_cast<size_t>(b) * W + w];
        }
      },
      "cond_embed_backward");
}

}  // namespace dnft::cuda
