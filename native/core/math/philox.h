// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the counter-based generator
// behind every random draw. A draw is keyed by (seed, stream, index): element `index` of stream `stream` reads lane
// index % 4 of the block at counter (index / 4, stream). Any element can be computed on its own, so CPU loops and
// CUDA threads produce identical bits.
#pragma once

#include <cmath>

#include "core/common.h"

namespace dnft {

struct PhiloxBlock {
  uint32_t v[4];
};

DNFT_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(product >> 32);
  return static_cast<uint32_t>(product);
}

DNFT_HD PhiloxBlock philox4x32_10(PhiloxBlock counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t* c = counter.v;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = philox_mulhilo(kMul0, c[0], &hi0);
    const uint32_t lo1 = philox_mulhilo(kMul1, c[2], &hi1);
    const PhiloxBlock next = {{hi1 ^ c[1] ^ key0, lo1, hi0 ^ c[3] ^ key1, lo0}};
    counter = next;
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

DNFT_HD PhiloxBlock philox_block(uint64_t seed, uint32_t stream, uint64_t block) {
  const PhiloxBlock counter = {{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), stream, 0u}};
  return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Maps 32 random bits to a float in the open interval (0, 1), so log() below never sees 0.
DNFT_HD float philox_bits_to_unit(uint32_t bits) {
  return (static_cast<float>(bits >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

DNFT_HD float philox_uniform(uint64_t seed, uint32_t stream, uint64_t index) {
  return philox_bits_to_unit(philox_block(seed, stream, index >> 2).v[index & 3]);
}

// Standard normal by Box-Muller over the lane pairs (0, 1) and (2, 3) of one block.
DNFT_HD float philox_normal(uint64_t seed, uint32_t stream, uint64_t index) {
  const PhiloxBlock block = philox_block(seed, stream, index >> 2);
  const int pair = static_cast<int>(index & 2);
  const float radius = sqrtf(-2.0f * logf(philox_bits_to_unit(block.v[pair])));
  const float angle = 6.2831853071795865f * philox_bits_to_unit(block.v[pair + 1]);
  return (index & 1) ? radius * sinf(angle) : radius * cosf(angle);
}

// Random streams: one per purpose, so that draws of one kind never shift those of another.
enum PhiloxStream : uint32_t {
  kStreamInit = 1,     // parameter initialisation
  kStreamNoise = 2,    // interpolation noise eps
  kStreamTime = 3,     // training times t
  kStreamDropout = 4,  // condition dropout
  kStreamSample = 5,   // initial noise of rollouts: sample i uses offsets [i·D, (i + 1)·D)
  kStreamPrompt = 6,   // the trainers' choice of prompts (drawn in TypeScript, lib/training/common.ts)
  kStreamSde = 7,      // SDE noise of step n of sample i: offsets n·2^40 + [i·D, (i + 1)·D)
  kStreamLora = 8,     // LoRA A initialisation
  kStreamWindow = 9,   // Flow-GRPO-Fast: the start of a rollout chunk's SDE window (drawn in TypeScript)
  kStreamUser = 16,    // first stream free for Tensor.randn and friends
};

}  // namespace dnft
