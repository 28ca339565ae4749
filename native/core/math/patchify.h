// The DiT's patch index map (docs/dit.md): an image (S, S, C) flattened HWC, i.e. pixel (y, x) channel c at
// (y·S + x)·C + c, cut into (S/p)² tokens of p·p·C values. Token (gy, gx) is number gy·(S/p) + gx; its value
// j = (py·p + px)·C + c is the pixel (gy·p + py, gx·p + px), channel c.
#pragma once

#include "core/common.h"

namespace dnft {

// The image index of value j of token `token`.
DNFT_HD int patch_pixel_index(int token, int j, int S, int C, int p) {
  const int grid = S / p;
  const int gy = token / grid, gx = token % grid;
  const int c = j % C, px = (j / C) % p, py = j / (C * p);
  return ((gy * p + py) * S + gx * p + px) * C + c;
}

}  // namespace dnft
