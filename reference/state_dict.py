"""PyTorch state dicts into and out of our networks (test/state-dict.test.ts).

Usage:
  /usr/bin/python3 reference/state_dict.py export CONFIG_JSON SEED WEIGHTS.safetensors IO.safetensors
  /usr/bin/python3 reference/state_dict.py import CHECKPOINT.safetensors IO.safetensors OUT.safetensors

export: builds the reference network of CONFIG_JSON (camelCase fields, `arch` 'mlp' or 'dit'), fills it with
random values from torch.Generator(SEED) (EmbeddedNet.randomize_), and writes `net.state_dict()` to WEIGHTS with
no metadata; IO gets fixed inputs `input.x`, `input.t`, `input.cond` (drawn from the same generator) and the
network's `output` on them.

import: reads one of our checkpoints, builds the network of its `dnft.config` metadata and loads with
`load_state_dict(strict=True)` the tensors named as the network's `state_dict()` keys; every other tensor must be
under one of the prefixes a checkpoint adds (old., ref., ema., optimizer.m., optimizer.v., lora.). OUT gets
`output` on IO's inputs.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io  # noqa: E402
from dit import DiT, DiTConfig  # noqa: E402
from velocity_net import VelocityNet, VelocityNetConfig  # noqa: E402

_ARCHS = {"mlp": (VelocityNetConfig, VelocityNet), "dit": (DiTConfig, DiT)}
_CHECKPOINT_PREFIXES = ("old.", "ref.", "ema.", "optimizer.m.", "optimizer.v.", "lora.")
_BATCH = 5


def build(cfg: dict) -> torch.nn.Module:
    config_type, net_type = _ARCHS[cfg.get("arch", "mlp")]
    return net_type(config_type.from_dict(cfg), init=False)


def export(config_json: str, seed: str, weights_path: str, io_path: str) -> None:
    cfg = json.loads(config_json)
    net = build(cfg)
    generator = torch.Generator().manual_seed(int(seed))
    net.randomize_(generator=generator)
    safetensors_io.save(weights_path, net.state_dict())
    x = torch.randn(_BATCH, cfg["dataDim"], generator=generator)
    t = torch.rand(_BATCH, generator=generator)
    cond = torch.randint(0, cfg["vocabSize"], (_BATCH, cfg["condSlots"]), generator=generator, dtype=torch.int32)
    with torch.no_grad():
        out = net(x, t, cond.long())
    safetensors_io.save(io_path, {"input.x": x, "input.t": t, "input.cond": cond, "output": out})


def load(checkpoint_path: str, io_path: str, out_path: str) -> None:
    tensors, meta = safetensors_io.load(checkpoint_path)
    net = build(json.loads(meta["dnft.config"]))
    keys = set(net.state_dict().keys())
    extra = [k for k in tensors if k not in keys and not k.startswith(_CHECKPOINT_PREFIXES)]
    if extra:
        raise ValueError(f"{checkpoint_path}: tensors outside the state dict and the checkpoint prefixes: {extra}")
    net.load_state_dict({k: v for k, v in tensors.items() if k in keys}, strict=True)
    io, _ = safetensors_io.load(io_path)
    with torch.no_grad():
        out = net(io["input.x"], io["input.t"], io["input.cond"].long())
    safetensors_io.save(out_path, {"output": out})


def main(argv: list) -> int:
    if len(argv) == 6 and argv[1] == "export":
        export(*argv[2:])
    elif len(argv) == 5 and argv[1] == "import":
        load(*argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main(sys.argv))
