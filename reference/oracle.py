"""Independent oracle for the test suite: forward + backward of the velocity network (MLP or DiT).

Usage:  /usr/bin/python3 reference/oracle.py IN.safetensors OUT.safetensors

IN holds every network parameter under its docs/network.md (or docs/dit.md) name, plus
`input.x` (B, D) F32, `input.t` (B) F32, `input.cond` (B, L) I32 and
`input.dout` (B, D) F32; metadata `config` is the JSON config (camelCase fields)
and optional metadata `dtype` is `float32` (default) or `float64`. The config's `arch`
('mlp', the default, or 'dit') picks the network.

OUT holds `output` (B, D), `grad.x` (B, D) and `grad.<name>` for every parameter,
all F32: out = net(x, t, cond) and the gradients of sum(out * dout).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Dict

# Single-threaded: the oracle runs on tiny inputs, often from parallel test workers.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io  # noqa: E402
from dit import DiT, DiTConfig  # noqa: E402
from velocity_net import VelocityNet, VelocityNetConfig  # noqa: E402

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_ARCHS = {"mlp": (VelocityNetConfig, VelocityNet), "dit": (DiTConfig, DiT)}


def run(in_path: str, out_path: str) -> None:
    """Load inputs, run forward/backward, write outputs."""
    tensors, meta = safetensors_io.load(in_path)
    if "config" not in meta:
        raise ValueError("metadata key 'config' is missing")
    cfg_dict = json.loads(meta["config"])
    arch = cfg_dict.get("arch", "mlp")
    if arch not in _ARCHS:
        raise ValueError(f"unsupported arch {arch!r} ('mlp' | 'dit')")
    config_type, net_type = _ARCHS[arch]
    config = config_type.from_dict(cfg_dict)
    dname = meta.get("dtype", "float32")
    if dname not in _DTYPES:
        raise ValueError(f"unsupported dtype {dname!r} (float32 | float64)")
    dtype = _DTYPES[dname]
    torch.manual_seed(0)  # deterministic, though nothing below is random

    net = net_type(config, init=False).to(dtype)
    state: Dict[str, torch.Tensor] = {}
    for name, p in net.named_parameters():
        if name not in tensors:
            raise ValueError(f"parameter {name!r} missing from {in_path}")
        v = tensors[name]
        if tuple(v.shape) != tuple(p.shape):
            raise ValueError(f"parameter {name!r}: shape {tuple(v.shape)} != {tuple(p.shape)}")
        state[name] = v.to(dtype)
    net.load_state_dict(state, strict=True)

    x = tensors["input.x"].to(dtype).requires_grad_(True)
    t = tensors["input.t"].to(dtype)
    cond = tensors["input.cond"].to(torch.int64)
    dout = tensors["input.dout"].to(dtype)
    b = x.shape[0]
    if x.shape != (b, config.dataDim) or t.shape != (b,) or dout.shape != x.shape:
        raise ValueError("input shapes do not match the config")
    if cond.shape != (b, config.condSlots):
        raise ValueError("input.cond shape does not match (B, condSlots)")
    if b > 0 and (int(cond.min()) < 0 or int(cond.max()) >= config.vocabSize):
        raise ValueError("input.cond has ids outside [0, vocabSize)")

    out = net(x, t, cond)
    (out * dout).sum().backward()

    result: Dict[str, torch.Tensor] = {
        "output": out.detach().float(),
        "grad.x": x.grad.detach().float(),
    }
    for name, p in net.named_parameters():
        if p.grad is None:  # unreachable for B > 0; keep OUT complete anyway
            result[f"grad.{name}"] = torch.zeros(p.shape, dtype=torch.float32)
        else:
            result[f"grad.{name}"] = p.grad.detach().float()
    safetensors_io.save(
        out_path,
        result,
        {"config": json.dumps(config.to_dict()), "dtype": dname, "torch": torch.__version__},
    )


if __name__ == "__main__":
    sys.exit(safetensors_io.run_script(run, sys.argv))
