// Patchify and unpatchify on the GPU: the index map of core/math/patchify.h, one thread per value; each direction is
// the other's backward.
#include "core/math/patchify.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/elementwise.cuh"

namespace dnft::cuda {

namespace {

// Moves every value between the token layout and the image layout (to_tokens picks the direction).
void move_patches(const Context& ctx, float* tokens, float* images, int B, int S, int C, int p, bool to_tokens,
                  const char* what) {
  const size_t per_image = static_cast<size_t>(S) * S * C, per_token = static_cast<size_t>(p) * p * C;
  for_each_index(
      ctx, B * per_image,
      [=] __device__(size_t i) {
        const size_t b = i / per_image, k = i % per_image;
        const int token = static_cast<int>(k / per_token), j = static_cast<int>(k % per_token);
        float* image = images + b * per_image + patch_pixel_index(token, j, S, C, p);
        if (to_tokens) {
          tokens[i] = *image;
        } else {
          *image = tokens[i];
        }
      },
      what);
}

}  // namespace

void CudaBackend::patchify(float* tokens, const float* images, int B, int S, int C, int p) {
  move_patches(ctx_, tokens, const_cast<float*>(images), B, S, C, p, true, "patchify");
}

void CudaBackend::unpatchify(float* images, const float* tokens, int B, int S, int C, int p) {
  move_patches(ctx_, const_cast<float*>(tokens), images, B, S, C, p, false, "unpatchify");
}

}  // namespace dnft::cuda
