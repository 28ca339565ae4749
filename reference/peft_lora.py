"""PEFT-style LoRA around the reference networks, written here without the peft package.

The layer keeps PEFT's module structure (`base_layer`, `lora_A` and `lora_B` as ModuleDicts keyed by the adapter
name, `scaling` = lora_alpha / r, or / sqrt(r) with use_rslora), so a wrapped network's state_dict() has PEFT's
in-memory names, and the adapter files follow PEFT's save_pretrained convention: `adapter_model.safetensors` with
the keys `base_model.model.<module>.lora_A.weight` / `.lora_B.weight` (the adapter name removed) and
`adapter_config.json` with r, lora_alpha and target_modules (a list matched as a name or a `.`-suffix of a module
name, or a string matched as a regular expression against the whole name).

Usage (test/lora-peft.test.ts):
  /usr/bin/python3 reference/peft_lora.py make CONFIG_JSON SEED RANK ALPHA TARGETS_JSON DIR
  /usr/bin/python3 reference/peft_lora.py apply CONFIG_JSON BASE.safetensors ADAPTER_DIR IO.safetensors OUT.safetensors

make: a reference network of CONFIG_JSON randomized with torch.Generator(SEED) (written to DIR/base.safetensors as
its state_dict), every module that the list TARGETS_JSON matches wrapped with a LoRA of RANK and ALPHA whose A and B
are both random, the adapter written PEFT's way to DIR/adapter/, and fixed inputs with the adapted network's
`output` to DIR/io.safetensors.

apply: the reference network of CONFIG_JSON with BASE's weights, adapted as ADAPTER_DIR's adapter_config.json says
and loaded with ADAPTER_DIR's tensors; every adapter tensor must be in the file and the file must hold nothing else.
OUT gets `output` on IO's inputs.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from typing import Callable, Dict

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io  # noqa: E402
from state_dict import build  # noqa: E402

ADAPTER = "default"
PREFIX = "base_model.model."
_BATCH = 5


class LoraLinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update, structured as PEFT's lora.Linear."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, rslora: bool = False) -> None:
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.ModuleDict({ADAPTER: nn.Linear(base.in_features, rank, bias=False)})
        self.lora_B = nn.ModuleDict({ADAPTER: nn.Linear(rank, base.out_features, bias=False)})
        self.scaling = alpha / (math.sqrt(rank) if rslora else rank)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.scaling * self.lora_B[ADAPTER](self.lora_A[ADAPTER](x))


def matcher(target_modules) -> Callable[[str], bool]:
    """PEFT's rule: a string is a regular expression for the whole name; a list names modules or their suffixes."""
    if isinstance(target_modules, str):
        return lambda name: re.fullmatch(target_modules, name) is not None
    targets = list(target_modules)
    return lambda name: any(name == t or name.endswith("." + t) for t in targets)


def adapt(
    net: nn.Module, rank: int, alpha: float, matches: Callable[[str], bool], rslora: bool = False
) -> Dict[str, LoraLinear]:
    """Wraps every nn.Linear whose name `matches` in a LoraLinear; returns them by module name."""
    adapted: Dict[str, LoraLinear] = {}
    for name, module in list(net.named_modules()):
        if not name or not matches(name):
            continue
        if not isinstance(module, nn.Linear):
            raise ValueError(f"{name} is not a linear layer")
        parent_name, _, leaf = name.rpartition(".")
        wrapped = LoraLinear(module, rank, alpha, rslora)
        setattr(net.get_submodule(parent_name) if parent_name else net, leaf, wrapped)
        adapted[name] = wrapped
    if not adapted:
        raise ValueError("no module matches the targets")
    return adapted


def adapter_state_dict(net: nn.Module) -> Dict[str, torch.Tensor]:
    """The lora_ tensors of state_dict() under PEFT's file names (prefix added, adapter name removed)."""
    suffix = f".{ADAPTER}.weight"
    return {
        PREFIX + k[: -len(suffix)] + ".weight": v.detach().clone()
        for k, v in net.state_dict().items()
        if ".lora_" in k and k.endswith(suffix)
    }


def load_adapter(net: nn.Module, tensors: Dict[str, torch.Tensor]) -> None:
    """Loads PEFT file tensors into the wrapped network; a missing or unexpected adapter tensor is an error."""
    own = {k for k in net.state_dict() if ".lora_" in k}
    renamed = {}
    for key, value in tensors.items():
        if not (key.startswith(PREFIX) and key.endswith(".weight")):
            raise ValueError(f"unexpected tensor {key}")
        renamed[key[len(PREFIX) : -len(".weight")] + f".{ADAPTER}.weight"] = value
    unexpected = sorted(set(renamed) - own)
    missing = sorted(own - set(renamed))
    if unexpected or missing:
        raise ValueError(f"missing {missing}, unexpected {unexpected}")
    result = net.load_state_dict(renamed, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"unexpected {result.unexpected_keys}")


def make(config_json: str, seed: str, rank: str, alpha: str, targets_json: str, out_dir: str) -> None:
    cfg = json.loads(config_json)
    net = build(cfg)
    generator = torch.Generator().manual_seed(int(seed))
    net.randomize_(generator=generator)
    os.makedirs(os.path.join(out_dir, "adapter"), exist_ok=True)
    safetensors_io.save(os.path.join(out_dir, "base.safetensors"), net.state_dict())
    targets = json.loads(targets_json)
    adapted = adapt(net, int(rank), float(alpha), matcher(targets))
    with torch.no_grad():
        for module in adapted.values():
            for part in (module.lora_A[ADAPTER], module.lora_B[ADAPTER]):
                part.weight.copy_(0.3 * torch.randn(part.weight.shape, generator=generator))
    safetensors_io.save(os.path.join(out_dir, "adapter", "adapter_model.safetensors"), adapter_state_dict(net))
    config = {"peft_type": "LORA", "r": int(rank), "lora_alpha": float(alpha), "target_modules": targets}
    config.update({"bias": "none", "lora_dropout": 0.0, "init_lora_weights": "gaussian", "use_rslora": False})
    with open(os.path.join(out_dir, "adapter", "adapter_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    x = torch.randn(_BATCH, cfg["dataDim"], generator=generator)
    t = torch.rand(_BATCH, generator=generator)
    cond = torch.randint(0, cfg["vocabSize"], (_BATCH, cfg["condSlots"]), generator=generator, dtype=torch.int32)
    with torch.no_grad():
        out = net(x, t, cond.long())
    io = {"input.x": x, "input.t": t, "input.cond": cond, "output": out}
    safetensors_io.save(os.path.join(out_dir, "io.safetensors"), io)


def apply(config_json: str, base_path: str, adapter_dir: str, io_path: str, out_path: str) -> None:
    net = build(json.loads(config_json))
    base, _ = safetensors_io.load(base_path)
    net.load_state_dict(base, strict=True)
    with open(os.path.join(adapter_dir, "adapter_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    if config.get("peft_type", "LORA") != "LORA" or config.get("bias", "none") != "none":
        raise ValueError(f"not a plain LoRA config: {config}")
    rslora = bool(config.get("use_rslora"))
    adapt(net, int(config["r"]), float(config["lora_alpha"]), matcher(config["target_modules"]), rslora)
    tensors, _ = safetensors_io.load(os.path.join(adapter_dir, "adapter_model.safetensors"))
    load_adapter(net, tensors)
    io, _ = safetensors_io.load(io_path)
    with torch.no_grad():
        out = net(io["input.x"], io["input.t"], io["input.cond"].long())
    safetensors_io.save(out_path, {"output": out})


def main(argv: list) -> int:
    torch.set_num_threads(1)
    if len(argv) == 8 and argv[1] == "make":
        make(*argv[2:])
    elif len(argv) == 7 and argv[1] == "apply":
        apply(*argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
