// Linear combinations of arrays: every solver update (Euler, Heun, DPM-Solver++, the CFG mix, x0 predictions) is one
// of these with coefficients computed on the host in double (core/sampler.cpp).
#pragma once

#include "core/common.h"

namespace dnft {

DNFT_HD float lincomb2(float a, float x, float b, float y) { return a * x + b * y; }
DNFT_HD float lincomb3(float a, float x, float b, float y, float c, float z) { return a * x + b * y + c * z; }

}  // namespace dnft
