// Helpers shared by the files that implement Model (model.cpp, model_nft.cpp, model_grpo.cpp).
#pragma once

#include <cstdint>

#include "core/buffer.h"

namespace dnft {

// Grows a staging buffer to at least `count` elements (contents are not kept).
template <typename T>
void ensure(Buffer<T>& buffer, Backend& backend, size_t count) {
  if (buffer.size() < count) buffer = Buffer<T>(backend, count);
}

// Counter offset of a per-step draw: the optimiser step in the high 32 bits, the element in the low ones.
inline uint64_t step_offset(int64_t step) { return static_cast<uint64_t>(step) << 32; }

}  // namespace dnft
