// Classifier-free guidance, forward and backward, for the sampler and the FlowGRPO step: one network pass over the
// stacked rows [x; x] with the tokens [c; null], then v = s·v(x, t, c) + (1 − s)·v(x, t, null) for guidance scale s.
// s = 1 is a plain pass over the rows alone.
#pragma once

#include "core/buffer.h"
#include "core/network.h"

namespace dnft {

// The scale that applies at time t: `scale` inside the guidance interval [t_min, t_max] (Kynkäänniemi et al. 2024),
// 1 (the conditional velocity alone) outside it.
inline double guidance_scale_at(double scale, double t_min, double t_max, double t) {
  return t >= t_min && t <= t_max ? scale : 1.0;
}

class Guidance {
 public:
  // Grows the stacked buffers to passes of up to `rows` rows of `dim` values (forward() grows them too), so that
  // a caller can allocate up front.
  void reserve(Backend& backend, size_t rows, size_t dim);
  // v (rows, D) at x (rows, D); t and tokens hold 2·rows entries when scale ≠ 1 (the rows' own, then the null
  // conditions'), rows entries otherwise. The workspace keeps the pass's activations for backward().
  void forward(Backend& backend, const Network& net, NetWorkspace& ws, const NetParams& params, const float* x,
               const float* t, const int32_t* tokens, int rows, double scale, float* v);
  // The backward of the last forward() on ws, with the same x, tokens, rows and scale: the parameter gradients of
  // Σ v·dv accumulate into grads.
  void backward(Backend& backend, const Network& net, NetWorkspace& ws, const NetParams& params, const NetGrads& grads,
                const float* x, const int32_t* tokens, const float* dv, int rows, double scale);

 private:
  Buffer<float> stacked_x_, stacked_v_;  // (2·rows, D): [x; x] and the pass's output, then its gradient
};

}  // namespace dnft
