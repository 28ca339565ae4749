#include "core/backend.h"

namespace dnft {

void Backend::adaln_forward(float* out, float* mean, float* rstd, const float* in, const float* mod, int B, int W) {
  modulated_norm_forward(out, mean, rstd, in, mod, mod != nullptr ? mod + W : nullptr, B, 1, W, 2 * W);
}

void Backend::adaln_backward(float* din, float* dmod, const float* dout, const float* in, const float* mean,
                             const float* rstd, const float* mod, int B, int W) {
  modulated_norm_backward(din, mod != nullptr ? dmod : nullptr, dmod != nullptr ? dmod + W : nullptr, dout, in, mean,
                          rstd, mod, B, 1, W, 2 * W);
}

}  // namespace dnft
