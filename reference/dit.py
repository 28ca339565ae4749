"""PyTorch reference of the diffusion transformer defined in docs/dit.md (`arch: 'dit'`).

Parameter names, shapes and registration order equal the doc's table, so `state_dict()` keys (and
`named_parameters()` order) match the flat-buffer order of the native backends and one safetensors file loads in
all implementations. The time + condition embedding is the MLP's (embedding.py). Device- and dtype-agnostic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from embedding import LN_EPS, EmbeddedNet, EmbeddingConfig


@dataclass(frozen=True)
class DiTConfig(EmbeddingConfig):
    """Network hyper-parameters: the shared fields, then the image's (docs/dit.md, camelCase)."""

    imageSize: int
    channels: int
    patch: int
    heads: int

    @property
    def grid(self) -> int:
        return self.imageSize // self.patch

    @property
    def tokens(self) -> int:
        return self.grid**2

    @property
    def patchDim(self) -> int:
        return self.patch**2 * self.channels

    def to_dict(self) -> Dict[str, Any]:
        return {"arch": "dit", **super().to_dict()}


CONFIG_D = DiTConfig(
    dataDim=768, width=192, depth=4, mlpRatio=4, timeFeatures=64, vocabSize=32, condSlots=8,
    imageSize=16, channels=3, patch=2, heads=4,
)


def patchify(x: torch.Tensor, c: DiTConfig) -> torch.Tensor:
    """(B, S·S·C) HWC -> (B, T, p·p·C): token gy·G + gx, value (py·p + px)·C + ch."""
    b, g, p = x.shape[0], c.grid, c.patch
    x = x.reshape(b, g, p, g, p, c.channels).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, c.tokens, c.patchDim)


def unpatchify(tok: torch.Tensor, c: DiTConfig) -> torch.Tensor:
    """Inverse of patchify: (B, T, p·p·C) -> (B, S·S·C)."""
    b, g, p = tok.shape[0], c.grid, c.patch
    x = tok.reshape(b, g, g, p, p, c.channels).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, c.dataDim)


def sincos_position_embedding(grid: int, width: int) -> torch.Tensor:
    """(grid², W) float64: [sin(x·ω), cos(x·ω), sin(y·ω), cos(y·ω)], ω_k = 10000^(−k/(W/4))."""
    q = width // 4
    omega = 10000.0 ** (-torch.arange(q, dtype=torch.float64) / q)
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                            indexing="ij")
    ax = xs.reshape(-1, 1) * omega
    ay = ys.reshape(-1, 1) * omega
    return torch.cat([torch.sin(ax), torch.cos(ax), torch.sin(ay), torch.cos(ay)], dim=1)


def modulate(h: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """layer_norm(h) · (1 + scale) + shift, the per-sample modulation broadcast over tokens."""
    n = F.layer_norm(h, (h.shape[-1],), eps=LN_EPS)
    return n * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    """Multi-head self-attention: `qkv` (3W, W) with outputs [q | k | v], `proj` (W, W)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        h, d = self.heads, w // self.heads
        q, k, v = self.qkv(x).reshape(b, t, 3, h, d).permute(2, 0, 3, 1, 4)  # each (B, H, T, d)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, w))


class Mlp(nn.Module):
    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, ratio * width)
        self.fc2 = nn.Linear(ratio * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    """adaLN-Zero transformer block: `ada` (6W, W) -> [scale, shift, gate] of attention, then of the MLP."""

    def __init__(self, width: int, heads: int, ratio: int) -> None:
        super().__init__()
        self.ada = nn.Linear(width, 6 * width)
        self.attn = Attention(width, heads)
        self.mlp = Mlp(width, ratio)

    def forward(self, h: torch.Tensor, se: torch.Tensor) -> torch.Tensor:
        s1, b1, g1, s2, b2, g2 = self.ada(se).chunk(6, dim=-1)
        h = h + g1.unsqueeze(1) * self.attn(modulate(h, s1, b1))
        return h + g2.unsqueeze(1) * self.mlp(modulate(h, s2, b2))


class FinalLayer(nn.Module):
    """`ada` (2W, W) -> [scale | shift], `linear` (p·p·C, W)."""

    def __init__(self, width: int, patch_dim: int) -> None:
        super().__init__()
        self.ada = nn.Linear(width, 2 * width)
        self.linear = nn.Linear(width, patch_dim)

    def forward(self, h: torch.Tensor, se: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada(se).chunk(2, dim=-1)
        return self.linear(modulate(h, scale, shift))


class DiT(EmbeddedNet):
    """v(x, t, cond): the diffusion transformer of docs/dit.md."""

    def __init__(self, config: DiTConfig, init: bool = True) -> None:
        super().__init__(config)  # time_mlp, cond_embed
        c = config
        w = c.width
        # registration order == flat-buffer order of the doc
        self.patch_embed = nn.Linear(c.patchDim, w)
        self.blocks = nn.ModuleList([DiTBlock(w, c.heads, c.mlpRatio) for _ in range(c.depth)])
        self.final = FinalLayer(w, c.patchDim)
        self.register_buffer("pos", sincos_position_embedding(c.grid, w).float(), persistent=False)
        if init:
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Initialise as the doc's table: U(±1/√fan_in) weights, zero biases, adaLN-Zero, zero final linear."""
        for name, p in self.named_parameters():
            if name == "cond_embed.weight":
                p.normal_(0.0, 0.02, generator=generator)
            elif name.endswith(".bias") or ".ada." in name or name.startswith("final."):
                p.zero_()
            else:
                b = 1.0 / math.sqrt(p.shape[1])
                p.uniform_(-b, b, generator=generator)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, D) float, t (B) float in [0, 1], cond (B, L) int -> velocity (B, D)."""
        c = self.config
        dtype = self.patch_embed.weight.dtype
        se = self.modulation_input(t, cond, dtype)
        h = self.patch_embed(patchify(x.to(dtype), c)) + self.pos.to(dtype)
        for blk in self.blocks:
            h = blk(h, se)
        return unpatchify(self.final(h, se), c)


def param_shapes(config: DiTConfig) -> List[Tuple[str, Tuple[int, ...]]]:
    """(name, shape) of every parameter in flat-buffer order."""
    c = config
    w, e, p = c.width, c.mlpRatio * c.width, c.patchDim

    def linear(name: str, out: int, inp: int) -> List[Tuple[str, Tuple[int, ...]]]:
        return [(f"{name}.weight", (out, inp)), (f"{name}.bias", (out,))]

    out = linear("time_mlp.fc1", w, c.timeFeatures) + linear("time_mlp.fc2", w, w)
    out += [("cond_embed.weight", (c.condSlots, c.vocabSize, w))] + linear("patch_embed", w, p)
    for i in range(c.depth):
        b = f"blocks.{i}"
        out += linear(f"{b}.ada", 6 * w, w) + linear(f"{b}.attn.qkv", 3 * w, w) + linear(f"{b}.attn.proj", w, w)
        out += linear(f"{b}.mlp.fc1", e, w) + linear(f"{b}.mlp.fc2", w, e)
    return out + linear("final.ada", 2 * w, w) + linear("final.linear", p, w)


def param_count(config: DiTConfig) -> int:
    """Total number of scalar parameters."""
    return sum(math.prod(s) for _, s in param_shapes(config))
