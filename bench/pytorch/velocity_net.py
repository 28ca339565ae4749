"""PyTorch reference of the velocity network defined in docs/network.md (`arch: 'mlp'`).

Parameter names, shapes and registration order equal the doc's table, so
`state_dict()` keys (and `named_parameters()` order) match the flat-buffer order
of the native backends and one safetensors file loads in all implementations.
The code is device-agnostic (CPU or CUDA) and dtype-agnostic (float32 / float64).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6


@dataclass(frozen=True)
class VelocityNetConfig:
    """Network hyper-parameters; field names follow docs/network.md (camelCase)."""

    dataDim: int
    width: int
    depth: int
    mlpRatio: int
    timeFeatures: int
    vocabSize: int
    condSlots: int

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"config.{f.name} must be a positive integer, got {v!r}")
        if self.timeFeatures % 2 != 0:
            raise ValueError("config.timeFeatures must be even")

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "VelocityNetConfig":
        """Build from a dict (extra keys such as `arch` are ignored)."""
        names = [f.name for f in dataclasses.fields(VelocityNetConfig)]
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"config is missing fields: {missing}")
        return VelocityNetConfig(**{n: int(d[n]) for n in names})

    @staticmethod
    def from_json(s: str) -> "VelocityNetConfig":
        return VelocityNetConfig.from_dict(json.loads(s))

    def to_dict(self) -> Dict[str, int]:
        return dataclasses.asdict(self)


CONFIG_M = VelocityNetConfig(
    dataDim=768, width=512, depth=4, mlpRatio=4, timeFeatures=64, vocabSize=32, condSlots=8
)
CONFIG_SMALL = VelocityNetConfig(
    dataDim=2, width=128, depth=3, mlpRatio=4, timeFeatures=32, vocabSize=16, condSlots=1
)


class _Namespace(nn.Module):
    """Plain container module (gives dotted parameter names such as `time_mlp.fc1`)."""


class CondEmbed(nn.Module):
    """One embedding table per condition slot: `weight` of shape (L, V, W)."""

    def __init__(self, slots: int, vocab: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(slots, vocab, width))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """cond (B, L) integer -> sum over slots of weight[l, cond[:, l]], shape (B, W)."""
        slots = torch.arange(self.weight.shape[0], device=cond.device)
        return self.weight[slots.unsqueeze(0), cond.long()].sum(dim=1)


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


def time_features(t: torch.Tensor, features: int, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal features (B, F): concat(cos(1000 t freq), sin(1000 t freq)), cos first."""
    half = features // 2
    k = torch.arange(half, device=t.device, dtype=dtype)
    freq = torch.exp(-math.log(10000.0) * k / half)
    arg = (1000.0 * t.to(dtype)).unsqueeze(1) * freq.unsqueeze(0)
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)


class VelocityNet(nn.Module):
    """v(x, t, cond): the velocity network of docs/network.md."""

    def __init__(self, config: VelocityNetConfig, init: bool = True) -> None:
        super().__init__()
        c = config
        self.config = c
        w, e = c.width, c.mlpRatio
        # registration order == flat-buffer order of the doc
        self.time_mlp = _Namespace()
        self.time_mlp.fc1 = nn.Linear(c.timeFeatures, w)
        self.time_mlp.fc2 = nn.Linear(w, w)
        self.cond_embed = CondEmbed(c.condSlots, c.vocabSize, w)
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

    @torch.no_grad()
    def randomize_(self, std: float = 0.05, generator: Optional[torch.Generator] = None) -> None:
        """Overwrite every parameter with non-zero random values (tests / benchmarks).

        Weights get U(±1/sqrt(fan_in)) (the embedding N(0, 0.02²)), biases and the
        otherwise-zero tensors N(0, std²) so that every path carries signal.
        """
        for name, p in self.named_parameters():
            if name == "cond_embed.weight":
                p.normal_(0.0, 0.02, generator=generator)
            elif name.endswith(".weight"):
                b = 1.0 / math.sqrt(p.shape[1])
                p.uniform_(-b, b, generator=generator)
            else:
                p.normal_(0.0, std, generator=generator)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, D) float, t (B) float in [0, 1], cond (B, L) int -> velocity (B, D)."""
        c = self.config
        dtype = self.input_proj.weight.dtype
        tf = time_features(t, c.timeFeatures, dtype)
        te = self.time_mlp.fc2(F.silu(self.time_mlp.fc1(tf)))
        se = F.silu(te + self.cond_embed(cond))
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
