#include "core/guidance.h"

namespace dnft {

void Guidance::reserve(Backend& backend, size_t rows, size_t dim) {
  ensure(stacked_x_, backend, 2 * rows * dim);
  ensure(stacked_v_, backend, 2 * rows * dim);
}

void Guidance::forward(Backend& backend, const Network& net, NetWorkspace& ws, const NetParams& params, const float* x,
                       const float* t, const int32_t* tokens, int rows, double scale, float* v) {
  if (scale == 1.0) {
    net.forward(backend, ws, params, x, t, tokens, rows, v);
    return;
  }
  reserve(backend, rows, net.config().data_dim);
  const size_t n = static_cast<size_t>(rows) * net.config().data_dim;
  backend.copy(stacked_x_.get(), x, n * sizeof(float));
  backend.copy(stacked_x_.get() + n, x, n * sizeof(float));
  net.forward(backend, ws, params, stacked_x_.get(), t, tokens, 2 * rows, stacked_v_.get());
  backend.lincomb(v, n, static_cast<float>(scale), stacked_v_.get(), static_cast<float>(1.0 - scale),
                  stacked_v_.get() + n, 0.0f, nullptr);
}

void Guidance::backward(Backend& backend, const Network& net, NetWorkspace& ws, const NetParams& params,
                        const NetGrads& grads, const float* x, const int32_t* tokens, const float* dv, int rows,
                        double scale) {
  if (scale == 1.0) {
    net.backward(backend, ws, params, grads, x, tokens, dv, rows, nullptr);
    return;
  }
  // The conditional rows get s·dv, the null rows (1 − s)·dv.
  const size_t n = static_cast<size_t>(rows) * net.config().data_dim;
  backend.lincomb(stacked_v_.get(), n, static_cast<float>(scale), dv, 0.0f, dv, 0.0f, nullptr);
  backend.lincomb(stacked_v_.get() + n, n, static_cast<float>(1.0 - scale), dv, 0.0f, dv, 0.0f, nullptr);
  net.backward(backend, ws, params, grads, stacked_x_.get(), tokens, stacked_v_.get(), 2 * rows, nullptr);
}

}  // namespace dnft
