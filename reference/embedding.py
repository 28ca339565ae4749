"""What both PyTorch reference networks share (docs/network.md, docs/dit.md): the config's dict/JSON form, the time
and condition embedding that ends in the modulation input SiLU(time_mlp(features(t)) + cond_embed(cond)), and the
random fill used by tests and benchmarks.

The configs are validated by lib/options/net-config.ts before any file reaches these scripts; the only check here is that every
field is present.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Type, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6

C = TypeVar("C", bound="ConfigDict")


class ConfigDict:
    """Base of the config dataclasses: their dict and JSON forms, field names as the docs (camelCase)."""

    @classmethod
    def from_dict(cls: Type[C], d: Mapping[str, Any]) -> C:
        """A config from a dict with every field (extra keys such as `arch` are ignored)."""
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"config is missing fields: {missing}")
        return cls(**{n: int(d[n]) for n in names})

    @classmethod
    def from_json(cls: Type[C], s: str) -> C:
        return cls.from_dict(json.loads(s))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class EmbeddingConfig(ConfigDict):
    """The fields both architectures share (docs/network.md, docs/dit.md)."""

    dataDim: int
    width: int
    depth: int
    mlpRatio: int
    timeFeatures: int
    vocabSize: int
    condSlots: int


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


def time_features(t: torch.Tensor, features: int, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal features (B, F): concat(cos(1000 t freq), sin(1000 t freq)), cos first."""
    half = features // 2
    k = torch.arange(half, device=t.device, dtype=dtype)
    freq = torch.exp(-math.log(10000.0) * k / half)
    arg = (1000.0 * t.to(dtype)).unsqueeze(1) * freq.unsqueeze(0)
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)


class EmbeddedNet(nn.Module):
    """Base of both networks: registers `time_mlp` and `cond_embed` first (the flat-buffer order of both docs)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        c = config
        self.config = c
        self.time_mlp = _Namespace()
        self.time_mlp.fc1 = nn.Linear(c.timeFeatures, c.width)
        self.time_mlp.fc2 = nn.Linear(c.width, c.width)
        self.cond_embed = CondEmbed(c.condSlots, c.vocabSize, c.width)

    def modulation_input(self, t: torch.Tensor, cond: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """SiLU(time embedding + condition embedding), (B, W): the input of every adaLN projection."""
        tf = time_features(t, self.config.timeFeatures, dtype)
        te = self.time_mlp.fc2(F.silu(self.time_mlp.fc1(tf)))
        return F.silu(te + self.cond_embed(cond))

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
