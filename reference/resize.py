"""Oracle for resizeImage (lib/images/resize.ts): PyTorch's antialiased bilinear resampling in float64.

Usage:  /usr/bin/python3 reference/resize.py IN.json OUT.json

IN is a JSON list of cases {"width", "height", "channels", "size", "values"} with values an HWC image flattened;
OUT is the list of the size x size resampled images, HWC flattened, from
torch.nn.functional.interpolate(mode="bilinear", antialias=True, align_corners=False) on float64 tensors.
"""

from __future__ import annotations

import sys
from typing import List

import torch
import torch.nn.functional as F

from json_cases import run


def resize(case) -> List[float]:
    h, w, c, size = int(case["height"]), int(case["width"]), int(case["channels"]), int(case["size"])
    image = torch.tensor(case["values"], dtype=torch.float64).reshape(h, w, c).permute(2, 0, 1).unsqueeze(0)
    out = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.squeeze(0).permute(1, 2, 0).reshape(-1).tolist()


if __name__ == "__main__":
    sys.exit(run(sys.argv, resize))
