"""Oracle of the LoRA-adapted network: forward + backward with frozen base weights.

Usage:  /usr/bin/python3 reference/lora_oracle.py IN.safetensors OUT.safetensors

IN is oracle.py's input (every base parameter, input.x, input.t, input.cond, input.dout, metadata `config`)
plus every adapter tensor `<module>.lora_A.weight` (rank, in) and `<module>.lora_B.weight` (out, rank), and
metadata `lora`: JSON {"rank", "alpha", "targets"} (targets are module names inside a block, e.g. "attn.qkv").

Each targeted nn.Linear `blocks.<i>.<target>` computes base(x) + (alpha / rank) * B(A(x)), as PEFT's
lora.Linear does. OUT holds `output`, `grad.x` and `grad.<adapter tensor>`; the base gets no gradient.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Dict, List

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io  # noqa: E402
from dit import DiT, DiTConfig  # noqa: E402
from velocity_net import VelocityNet, VelocityNetConfig  # noqa: E402

_ARCHS = {"mlp": (VelocityNetConfig, VelocityNet), "dit": (DiTConfig, DiT)}


class LoraLinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        self.scaling = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * self.lora_B(self.lora_A(x))


def adapt(net: nn.Module, rank: int, alpha: float, targets: List[str]) -> Dict[str, LoraLinear]:
    """Replaces blocks.<i>.<target> by LoraLinear; returns them by module name."""
    adapted: Dict[str, LoraLinear] = {}
    for name, module in list(net.named_modules()):
        parts = name.split(".")
        if len(parts) < 3 or parts[0] != "blocks" or ".".join(parts[2:]) not in targets:
            continue
        if not isinstance(module, nn.Linear):
            raise ValueError(f"{name} is not a linear layer")
        parent = net.get_submodule(".".join(parts[:-1]))
        wrapped = LoraLinear(module, rank, alpha)
        setattr(parent, parts[-1], wrapped)
        adapted[name] = wrapped
    return adapted


def run(in_path: str, out_path: str) -> None:
    tensors, meta = safetensors_io.load(in_path)
    cfg_dict = json.loads(meta["config"])
    lora = json.loads(meta["lora"])
    config_type, net_type = _ARCHS[cfg_dict.get("arch", "mlp")]
    config = config_type.from_dict(cfg_dict)
    net = net_type(config, init=False)
    net.load_state_dict({name: tensors[name] for name, _ in net.named_parameters()}, strict=True)
    for p in net.parameters():
        p.requires_grad_(False)
    adapted = adapt(net, int(lora["rank"]), float(lora["alpha"]), list(lora["targets"]))
    if not adapted:
        raise ValueError("no module matches the targets")
    for name, module in adapted.items():
        for part in ("lora_A", "lora_B"):
            layer = getattr(module, part)
            value = tensors[f"{name}.{part}.weight"]
            if tuple(value.shape) != tuple(layer.weight.shape):
                raise ValueError(f"{name}.{part}.weight: shape {tuple(value.shape)} != {tuple(layer.weight.shape)}")
            with torch.no_grad():
                layer.weight.copy_(value)

    x = tensors["input.x"].requires_grad_(True)
    out = net(x, tensors["input.t"], tensors["input.cond"].to(torch.int64))
    (out * tensors["input.dout"]).sum().backward()
    result: Dict[str, torch.Tensor] = {"output": out.detach(), "grad.x": x.grad.detach()}
    for name, module in adapted.items():
        for part in ("lora_A", "lora_B"):
            result[f"grad.{name}.{part}.weight"] = getattr(module, part).weight.grad.detach()
    safetensors_io.save(out_path, result, {"torch": torch.__version__})


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} IN.safetensors OUT.safetensors", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(1)
    run(sys.argv[1], sys.argv[2])
