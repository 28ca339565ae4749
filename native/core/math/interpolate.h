// Forward (noising) process of rectified flow, docs/algorithms.md §1: t = 0 is data, t = 1 is noise.
#pragma once

#include "core/common.h"

namespace dnft {

struct Interpolated {
  float x_t;
  float target;  // the velocity v = eps - x0
};

DNFT_HD Interpolated interpolate(float x0, float eps, float t) { return {(1.0f - t) * x0 + t * eps, eps - x0}; }

}  // namespace dnft
