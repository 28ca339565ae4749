"""PyTorch reference of the velocity network defined in docs/network.md (`arch: 'mlp'`).

Parameter names, shapes and registration order equal the doc's table, so
`state_dict()` keys (and `named_parameters()` order) match the flat-buffer order
of the native backends and one safetensors file loads in all implementations.
The code is device-agnostic (CPU or CUDA) and dtype-agnostic (float32 / float64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from embedding import LN_EPS, EmbeddedNet, EmbeddingConfig


@dataclass(frozen=True)
class VelocityNetConfig(EmbeddingConfig):
    """Network hyper-parameters: exactly the shared fields (docs/network.md)."""


CONFIG_M = VelocityNetConfig(
    dataDim=768, width=512, depth=4, mlpRatio=4, timeFeatures=64, vocabSize=32, condSlots=8
)
CONFIG_SMALL = VelocityNetConfig(
    dataDim=2, width=128, depth=3, mlpRatio=4, timeFeatures=32, vocabSize=16, condSlots=1
)


class Block(nn.Module):
    """adaLN-Zero residual MLP block: `ada`, `fc1`, `fc2`."""

    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        self.ada = nn.Linear(width, 2 * width)
        self.fc1 = nn.Linear(width, ratio * width)
        self.fc2 = nn.Linear(ratio * width, width)

    def forward(self, h: torch.Tensor, se: torch.Tensor) -> torch.Tensor:
        w = h.shape[-1]
        scale, shift = torch.split(self.ada(se), [w, w], dim=-1)
        n = F.layer_norm(h, (w,), eps=LN_EPS)
        u = self.fc1(n * (1 + scale) + shift)
        return h + self.fc2(F.silu(u))


class VelocityNet(EmbeddedNet):
    """v(x, t, cond): the velocity network of docs/network.md."""

    def __init__(self, config: VelocityNetConfig, init: bool = True) -> None:
        super().__init__(config)  # time_mlp, cond_embed
        c = config
        w, e = c.width, c.mlpRatio
        # registration order == flat-buffer order of the doc
        self.input_proj = nn.Linear(c.dataDim, w)
        self.blocks = nn.ModuleList([Block(w, e) for _ in range(c.depth)])
        self.output_proj = nn.Linear(w, c.dataDim)
        if init:
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Initialise exactly as the doc's table (adaLN-Zero, zero output head)."""
        c = self.config

        def uni(p: torch.Tensor, fan_in: int) -> None:
            b = 1.0 / math.sqrt(fan_in)
            p.uniform_(-b, b, generator=generator)

        uni(self.time_mlp.fc1.weight, c.timeFeatures)
        uni(self.time_mlp.fc2.weight, c.width)
        self.cond_embed.weight.normal_(0.0, 0.02, generator=generator)
        uni(self.input_proj.weight, c.dataDim)
        for blk in self.blocks:
            blk.ada.weight.zero_()
            uni(blk.fc1.weight, c.width)
            uni(blk.fc2.weight, c.mlpRatio * c.width)
        self.output_proj.weight.zero_()
        for name, p in self.named_parameters():
            if name.endswith(".bias"):
                p.zero_()

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, D) float, t (B) float in [0, 1], cond (B, L) int -> velocity (B, D)."""
        c = self.config
        dtype = self.input_proj.weight.dtype
        se = self.modulation_input(t, cond, dtype)
        h = self.input_proj(x.to(dtype))
        for blk in self.blocks:
            h = blk(h, se)
        return self.output_proj(F.layer_norm(h, (c.width,), eps=LN_EPS))


def param_shapes(config: VelocityNetConfig) -> List[Tuple[str, Tuple[int, ...]]]:
    """(name, shape) of every parameter in flat-buffer order."""
    c = config
    w, e = c.width, c.mlpRatio * c.width
    out: List[Tuple[str, Tuple[int, ...]]] = [
        ("time_mlp.fc1.weight", (w, c.timeFeatures)),
        ("time_mlp.fc1.bias", (w,)),
        ("time_mlp.fc2.weight", (w, w)),
        ("time_mlp.fc2.bias", (w,)),
        ("cond_embed.weight", (c.condSlots, c.vocabSize, w)),
        ("input_proj.weight", (w, c.dataDim)),
        ("input_proj.bias", (w,)),
    ]
    for i in range(c.depth):
        out += [
            (f"blocks.{i}.ada.weight", (2 * w, w)),
            (f"blocks.{i}.ada.bias", (2 * w,)),
            (f"blocks.{i}.fc1.weight", (e, w)),
            (f"blocks.{i}.fc1.bias", (e,)),
            (f"blocks.{i}.fc2.weight", (w, e)),
            (f"blocks.{i}.fc2.bias", (w,)),
        ]
    out += [("output_proj.weight", (c.dataDim, w)), ("output_proj.bias", (c.dataDim,))]
    return out


def param_count(config: VelocityNetConfig) -> int:
    """Total number of scalar parameters."""
    return sum(math.prod(s) for _, s in param_shapes(config))


def uses_weight_decay(name: str) -> bool:
    """Weight decay applies to Linear weights only (not biases, not cond_embed)."""
    return name.endswith(".weight") and name != "cond_embed.weight"
