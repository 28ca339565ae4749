"""Oracle of the LoRA-adapted network: forward + backward with frozen base weights.

Usage:  /usr/bin/python3 reference/lora_oracle.py IN.safetensors OUT.safetensors

IN is oracle.py's input (every base parameter, input.x, input.t, input.cond, input.dout, metadata `config`)
plus every adapter tensor `<module>.lora_A.weight` (rank, in) and `<module>.lora_B.weight` (out, rank), and
metadata `lora`: JSON {"rank", "alpha", "targets"} (targets are module names inside a block, e.g. "attn.qkv").

Each targeted nn.Linear `blocks.<i>.<target>` computes base(x) + (alpha / rank) * B(A(x)), as PEFT's
lora.Linear does (LoraLinear of peft_lora.py). OUT holds `output`, `grad.x` and `grad.<adapter tensor>`; the base
gets no gradient.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, List

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io  # noqa: E402
from dit import DiT, DiTConfig  # noqa: E402
from peft_lora import ADAPTER, adapt  # noqa: E402
from velocity_net import VelocityNet, VelocityNetConfig  # noqa: E402

_ARCHS = {"mlp": (VelocityNetConfig, VelocityNet), "dit": (DiTConfig, DiT)}


def in_blocks(targets: List[str]) -> Callable[[str], bool]:
    """Our targets: module names inside every block (`blocks.<i>.<target>`), never a module outside them."""

    def matches(name: str) -> bool:
        parts = name.split(".", 2)
        return len(parts) == 3 and parts[0] == "blocks" and parts[2] in targets

    return matches


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
    adapted = adapt(net, int(lora["rank"]), float(lora["alpha"]), in_blocks(list(lora["targets"])))
    for name, module in adapted.items():
        for part in ("lora_A", "lora_B"):
            layer = getattr(module, part)[ADAPTER]
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
            result[f"grad.{name}.{part}.weight"] = getattr(module, part)[ADAPTER].weight.grad.detach()
    safetensors_io.save(out_path, result, {"torch": torch.__version__})


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} IN.safetensors OUT.safetensors", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(1)
    run(sys.argv[1], sys.argv[2])
