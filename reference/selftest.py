"""Self-checks of the PyTorch reference: /usr/bin/python3 reference/selftest.py

(a) parameter count of config M, names/shapes/order vs the doc's table;
(b) float64 gradients vs torch.autograd.gradcheck on a tiny config (random non-zero params);
(c) the forward vs an independent NumPy transcription of docs/network.md;
(d) safetensors_io round trip (all dtypes, metadata, empty tensors, layout);
(e) oracle.py end to end (float32 and float64) vs a direct computation, for the MLP and the DiT;
(f) the DiT (dit.py): names/shapes/order, config D's count, zero output at init, patchify's HWC index map,
    float64 gradcheck on a tiny config with odd token count and head size.
Exits non-zero on the first failure.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import tempfile
from typing import Any, Dict

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import dit  # noqa: E402
import safetensors_io  # noqa: E402
from velocity_net import (  # noqa: E402
    CONFIG_M,
    CONFIG_SMALL,
    VelocityNet,
    VelocityNetConfig,
    param_count,
    param_shapes,
)

TINY = VelocityNetConfig(
    dataDim=3, width=8, depth=2, mlpRatio=2, timeFeatures=4, vocabSize=5, condSlots=2
)


def check_params() -> None:
    for cfg in (CONFIG_M, CONFIG_SMALL, TINY):
        net = VelocityNet(cfg)
        got = [(n, tuple(p.shape)) for n, p in net.named_parameters()]
        assert got == param_shapes(cfg), "parameter names/shapes/order differ from the doc"
        assert list(net.state_dict().keys()) == [n for n, _ in got]
        # init: adaLN-Zero and zero head => zero output at init
        x = torch.randn(4, cfg.dataDim)
        t = torch.rand(4)
        c = torch.randint(0, cfg.vocabSize, (4, cfg.condSlots), dtype=torch.int32)
        assert torch.count_nonzero(net(x, t, c)) == 0
    n = param_count(CONFIG_M)
    print(f"(a) config M parameters: {n} ({n / 1e6:.3f}M); small: {param_count(CONFIG_SMALL)}")
    assert 11.0e6 < n < 12.0e6


def check_gradcheck() -> None:
    torch.manual_seed(1)
    net = VelocityNet(TINY).double()
    net.randomize_(std=0.3)
    with torch.no_grad():  # larger embedding so the conditioning path matters
        net.cond_embed.weight.normal_(0.0, 0.5)
    names = [n for n, _ in net.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in net.parameters()]
    for p in params:
        assert torch.count_nonzero(p) == p.numel(), "random params should be non-zero"
    b = 5
    x = torch.randn(b, TINY.dataDim, dtype=torch.float64, requires_grad=True)
    t = torch.rand(b, dtype=torch.float64)
    cond = torch.randint(0, TINY.vocabSize, (b, TINY.condSlots), dtype=torch.int32)
    cond[0] = 0  # the null condition
    cond[1, 0] = cond[1, 1] = 3  # the same id in two slots uses two different tables

    from torch.nn.utils.stateless import functional_call

    def f(xx: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return functional_call(net, dict(zip(names, ps)), (xx, t, cond))

    ok = torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-5)
    assert ok
    print(f"(b) gradcheck float64 on tiny config: ok ({len(params)} parameter tensors + x)")


def numpy_forward(
    sd: Dict[str, np.ndarray],
    cfg: VelocityNetConfig,
    x: np.ndarray,
    t: np.ndarray,
    cond: np.ndarray,
) -> np.ndarray:
    """Straight transcription of docs/network.md in float64 NumPy."""

    def lin(name: str, z: np.ndarray) -> np.ndarray:
        return z @ sd[name + ".weight"].T + sd[name + ".bias"]

    def silu(z: np.ndarray) -> np.ndarray:
        return z / (1.0 + np.exp(-z))

    def ln(z: np.ndarray) -> np.ndarray:
        mu = z.mean(axis=1, keepdims=True)
        var = ((z - mu) ** 2).mean(axis=1, keepdims=True)
        return (z - mu) / np.sqrt(var + 1e-6)

    half = cfg.timeFeatures // 2
    k = np.arange(half, dtype=np.float64)
    freq = np.exp(-math.log(10000.0) * k / half)
    arg = 1000.0 * t[:, None] * freq[None, :]
    tf = np.concatenate([np.cos(arg), np.sin(arg)], axis=1)
    te = lin("time_mlp.fc2", silu(lin("time_mlp.fc1", tf)))
    emb = sd["cond_embed.weight"]
    ce = sum(emb[l, cond[:, l], :] for l in range(cfg.condSlots))
    se = silu(te + ce)
    h = lin("input_proj", x)
    w = cfg.width
    for i in range(cfg.depth):
        a = lin(f"blocks.{i}.ada", se)
        scale, shift = a[:, :w], a[:, w:]
        u = lin(f"blocks.{i}.fc1", ln(h) * (1 + scale) + shift)
        h = h + lin(f"blocks.{i}.fc2", silu(u))
    return lin("output_proj", ln(h))


def check_numpy_forward() -> None:
    torch.manual_seed(2)
    for cfg in (TINY, CONFIG_SMALL):
        net = VelocityNet(cfg).double()
        net.randomize_(std=0.2)
        b = 7
        x = torch.randn(b, cfg.dataDim, dtype=torch.float64)
        t = torch.rand(b, dtype=torch.float64)
        cond = torch.randint(0, cfg.vocabSize, (b, cfg.condSlots), dtype=torch.int32)
        got = net(x, t, cond).detach().numpy()
        sd = {k: v.numpy() for k, v in net.state_dict().items()}
        ref = numpy_forward(sd, cfg, x.numpy(), t.numpy(), cond.numpy())
        err = float(np.max(np.abs(got - ref)))
        assert err < 1e-12, err
    print(f"(c) forward vs NumPy transcription of the doc: max abs err {err:.2e}")


def check_safetensors() -> None:
    tensors = {
        "b.f32": torch.randn(3, 4),
        "a.f64": torch.randn(5, dtype=torch.float64),
        "c.i32": torch.randint(-100, 100, (2, 3, 2), dtype=torch.int32),
        "d.i64": torch.tensor([2**40, -7], dtype=torch.int64),
        "e.empty": torch.zeros(0, 3),
        "f.scalar": torch.tensor(1.5),
        "g.noncontig": torch.arange(12.0).reshape(3, 4).t(),
    }
    meta = {"config": json.dumps(CONFIG_SMALL.to_dict()), "note": "héllo"}
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.safetensors")
        safetensors_io.save(p, tensors, meta)
        back, m2 = safetensors_io.load(p)
        assert m2 == meta
        assert set(back) == set(tensors)
        for k, v in tensors.items():
            assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
            assert torch.equal(back[k], v), k
        with open(p, "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        assert n % 8 == 0
        header = json.loads(raw[8 : 8 + n])
        order = sorted((v["data_offsets"][0], k) for k, v in header.items() if k != "__metadata__")
        # 8-byte dtypes first, then by name
        assert [k for _, k in order][:2] == ["a.f64", "d.i64"], order
        assert [k for _, k in order][2:] == sorted(k for _, k in order[2:])
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        assert len(raw) == 8 + n + max(ends)
        assert [f for f in os.listdir(d)] == ["x.safetensors"], "temp file left behind"
    print("(d) safetensors_io round trip: ok")


TINY_DIT = dit.DiTConfig(
    dataDim=108, width=12, depth=2, mlpRatio=2, timeFeatures=4, vocabSize=5, condSlots=2,
    imageSize=6, channels=3, patch=2, heads=3,
)


def check_oracle() -> None:
    for cfg, net_type in ((TINY, VelocityNet), (TINY_DIT, dit.DiT)):
        check_oracle_of(cfg, net_type)
    print("(e) oracle.py float32/float64, MLP and DiT: ok")


def check_oracle_of(cfg: Any, net_type: Any) -> None:
    torch.manual_seed(3)
    net = net_type(cfg)
    net.randomize_(std=0.2)
    b = 6
    x = torch.randn(b, cfg.dataDim)
    t = torch.rand(b)
    cond = torch.randint(0, cfg.vocabSize, (b, cfg.condSlots), dtype=torch.int32)
    dout = torch.randn(b, cfg.dataDim)
    inputs = {n: p.detach() for n, p in net.named_parameters()}
    inputs.update({"input.x": x, "input.t": t, "input.cond": cond, "input.dout": dout})
    for dname, dt in (("float32", torch.float32), ("float64", torch.float64)):
        ref = net_type(cfg, init=False).to(dt)
        ref.load_state_dict({k: v.to(dt) for k, v in net.state_dict().items()})
        xr = x.detach().to(dt, copy=True).requires_grad_(True)
        out = ref(xr, t.to(dt), cond)
        (out * dout.to(dt)).sum().backward()
        with tempfile.TemporaryDirectory() as d:
            pin, pout = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
            safetensors_io.save(pin, inputs, {"config": json.dumps(cfg.to_dict()), "dtype": dname})
            subprocess.run([sys.executable, os.path.join(HERE, "oracle.py"), pin, pout], check=True)
            res, _ = safetensors_io.load(pout)
        expect = {"output": out, "grad.x": xr.grad}
        expect.update({f"grad.{n}": p.grad for n, p in ref.named_parameters()})
        assert set(res) == set(expect), set(res) ^ set(expect)
        for k, v in expect.items():
            assert res[k].dtype == torch.float32 and res[k].shape == v.shape, k
            assert torch.allclose(res[k], v.float(), atol=1e-6, rtol=1e-5), k


def check_dit() -> None:
    for cfg in (dit.CONFIG_D, TINY_DIT):
        net = dit.DiT(cfg)
        got = [(n, tuple(p.shape)) for n, p in net.named_parameters()]
        assert got == dit.param_shapes(cfg), "DiT parameter names/shapes/order differ from the doc"
        assert list(net.state_dict().keys()) == [n for n, _ in got]
        x = torch.randn(3, cfg.dataDim)
        c = torch.randint(0, cfg.vocabSize, (3, cfg.condSlots), dtype=torch.int32)
        assert torch.count_nonzero(net(x, torch.rand(3), c)) == 0, "adaLN-Zero must give a zero output at init"
    assert dit.param_count(dit.CONFIG_D) == 2843340, dit.param_count(dit.CONFIG_D)

    # patchify: token gy·G + gx, value (py·p + px)·C + ch is pixel (gy·p + py, gx·p + px), ch of the HWC image.
    cfg = TINY_DIT
    img = torch.arange(cfg.dataDim, dtype=torch.float64).reshape(1, -1)
    tok = dit.patchify(img, cfg)
    s, ch, p, g = cfg.imageSize, cfg.channels, cfg.patch, cfg.grid
    for token in range(cfg.tokens):
        for j in range(cfg.patchDim):
            gy, gx, c_, px, py = token // g, token % g, j % ch, (j // ch) % p, j // (ch * p)
            assert tok[0, token, j] == ((gy * p + py) * s + gx * p + px) * ch + c_
    assert torch.equal(dit.unpatchify(tok, cfg), img)

    torch.manual_seed(4)
    net = dit.DiT(cfg).double()
    net.randomize_(std=0.3)
    names = [n for n, _ in net.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in net.parameters()]
    b = 3
    x = torch.randn(b, cfg.dataDim, dtype=torch.float64, requires_grad=True)
    t = torch.rand(b, dtype=torch.float64)
    cond = torch.randint(0, cfg.vocabSize, (b, cfg.condSlots), dtype=torch.int32)
    from torch.nn.utils.stateless import functional_call

    def f(xx: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return functional_call(net, dict(zip(names, ps)), (xx, t, cond))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-5)
    print(f"(f) DiT: layout, config D = {dit.param_count(dit.CONFIG_D)} parameters, patchify, gradcheck: ok")


def main() -> int:
    torch.set_num_threads(2)
    check_params()
    check_gradcheck()
    check_numpy_forward()
    check_safetensors()
    check_oracle()
    check_dit()
    print("all self-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
