// adaLN-Zero per element (cpu/adaln.cpp): the modulation of a normalised value and the gated residual.
#pragma once

#include "core/common.h"

namespace dnft {

DNFT_HD float adaln_modulate(float n, float scale, float shift) { return n * (1.0f + scale) + shift; }

DNFT_HD float gated_residual(float h, float gate, float y) { return h + gate * y; }

}  // namespace dnft
