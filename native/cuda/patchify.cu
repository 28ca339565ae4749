// Patchify and unpatchify on the GPU: the index map of core/math/patchify.h, one thread per value.
#include "core/math/patchify.h"
#include "cuda/elementwise.cuh"
#include "cuda/ops.cuh"

namespace dnft::cuda {

void patchify(const Context& ctx, float* tokens, const float* images, int B, int S, int C, int p) {
  const size_t per_image = static_cast<size_t>(S) * S * C, per_token = static_cast<size_t>(p) * p * C;
  for_each_index(
      ctx, B * per_image,
      [=] __device__(size_t i) {
        const size_t b = i / per_image, k = i % per_image;
        const int token = static_cast<int>(k / per_token), j = static_cast<int>(k % per_token);
        tokens[i] = images[b * per_image + patch_pixel_index(token, j, S, C, p)];
      },
      "patchify");
}

void unpatchify(const Context& ctx, float* images, const float* tokens, int B, int S, int C, int p) {
  const size_t per_image = static_cast<size_t>(S) * S * C, per_token = static_cast<size_t>(p) * p * C;
  for_each_index(
      ctx, B * per_image,
      [=] __device__(size_t i) {
        const size_t b = i / per_image, k = i % per_image;
        const int token = static_cast<int>(k / per_token), j = static_cast<int>(k % per_token);
        images[b * per_image + patch_pixel_index(token, j, S, C, p)] = tokens[i];
      },
      "unpatchify");
}

}  // namespace dnft::cuda
