// Finite-difference checks shared by the C++ tests: a directional derivative against an analytic gradient, and the
// whole network's backward (every parameter tensor and the input) on a model with perturbed parameters.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "core/math/philox.h"
#include "core/model.h"
#include "tests/check.h"

namespace dnft::test {

// Compares the central difference of f along a random direction of values[first, first + size) with the analytic
// gradient's projection; f reads `values` (restored afterwards).
inline void check_directional(const char* what, std::vector<float>& values, size_t first, size_t size,
                              const float* analytic, const std::function<double()>& f, uint64_t seed, double h = 3e-3,
                              double tolerance = 2e-3) {
  std::vector<float> direction(size);
  cpu_backend().fill_normal(direction.data(), size, seed, kStreamUser, 0, 1.0f);
  double expect = 0;
  for (size_t i = 0; i < size; ++i) expect += static_cast<double>(analytic[i]) * direction[i];
  const std::vector<float> saved(values);
  auto at = [&](double step) {
    for (size_t i = 0; i < size; ++i) values[first + i] = saved[first + i] + static_cast<float>(step) * direction[i];
    const double value = f();
    values = saved;
    return value;
  };
  const double fd = (at(h) - at(-h)) / (2 * h);
  const double err = std::fabs(fd - expect) / std::max(1e-3, std::fabs(expect));
  CHECK(err < tolerance, "%s: finite difference %.6g vs backward %.6g (rel err %.2g)", what, fd, expect, err);
}

// The network of `c` with every parameter perturbed (so zero-initialised groups carry gradient): the backward of
// Σ out·dout against directional finite differences for every parameter tensor and for x. Truncation error O(h²)
// vs float32 rounding O(ε/h) sets h.
inline void check_network_gradients(const NetConfig& c, int B, double h = 3e-3, double tolerance = 2e-3) {
  Model model(cpu_backend(), c, 3);
  const size_t n = model.net().param_count();
  std::vector<float> params(n), noise(n);
  model.get_params(params.data());
  cpu_backend().fill_normal(noise.data(), n, 9, kStreamUser, 0, 0.3f);
  for (size_t i = 0; i < n; ++i) params[i] += noise[i];
  model.set_params(params.data());

  std::vector<float> x(static_cast<size_t>(B) * c.data_dim), t(B), dout(x.size());
  std::vector<int32_t> tokens(static_cast<size_t>(B) * c.cond_slots);
  cpu_backend().fill_normal(x.data(), x.size(), 1, kStreamUser, 0, 1.0f);
  cpu_backend().fill_uniform(t.data(), t.size(), 2, kStreamUser, 0, 0.0f, 1.0f);
  cpu_backend().fill_normal(dout.data(), dout.size(), 4, kStreamUser, 0, 1.0f);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 5 + 1) % c.vocab_size);

  std::vector<float> out(dout.size()), dx(x.size()), grads(n);
  model.forward_backward(x.data(), t.data(), tokens.data(), dout.data(), B, out.data(), dx.data(), grads.data());

  auto projected = [&](const std::vector<float>& inputs) {
    model.velocity(ParamSet::kTheta, inputs.data(), t.data(), tokens.data(), B, out.data());
    double sum = 0;
    for (size_t i = 0; i < out.size(); ++i) sum += static_cast<double>(out[i]) * dout[i];
    return sum;
  };
  for (const ParamSpec& p : model.net().layout()) {
    check_directional(
        p.name.c_str(), params, p.offset, p.size, grads.data() + p.offset,
        [&] {
          model.set_params(params.data());
          return projected(x);
        },
        11 + p.offset, h, tolerance);
  }
  model.set_params(params.data());
  check_directional(
      "x", x, 0, x.size(), dx.data(), [&] { return projected(x); }, 11, h, tolerance);
}

}  // namespace dnft::test
