// The data-parallel hook of the training steps (docs/distributed.md): every rank computes the gradient of its own
// rows, and apply_step sums the rank-weighted gradients over the ranks before clipping and AdamW, so every rank
// applies the same update. A model without a communicator is a world of one and never calls it.
#pragma once

#include <cstddef>

#include "core/backend.h"

namespace dnft {

class Communicator {
 public:
  virtual ~Communicator() = default;
  // Host doubles summed over the ranks, bit-identical on every rank.
  virtual void sum(double* values, size_t count) = 0;
  // `count` floats in `backend`'s memory summed over the ranks, bit-identical on every rank.
  virtual void sum(Backend& backend, float* data, size_t count) = 0;
};

}  // namespace dnft
