// Helpers shared by the files that implement Model (model.cpp, model_nft.cpp, model_grpo.cpp).
#pragma once

#include <cstdint>

namespace dnft {

// Counter offset of a per-step draw: the optimiser step in the high 32 bits, the element in the low ones.
inline uint64_t step_offset(int64_t step) { return static_cast<uint64_t>(step) << 32; }

}  // namespace dnft
