"""PyTorch peers of the benchmark rows B1-B3 (bench/NOTES.md) on the same velocity net.

--config takes a JSON config of either architecture; `"arch": "dit"` selects the DiT (dit.py), e.g. config D:
  --config '{"arch": "dit", "dataDim": 768, "width": 192, "depth": 4, "mlpRatio": 4, "timeFeatures": 64,
             "vocabSize": 32, "condSlots": 8, "imageSize": 16, "channels": 3, "patch": 2, "heads": 4}'

B1, one flow-matching training step: x0, eps ~ N(0, I), t ~ U(0, 1), cond ~ U{0..V-1}^(B, L);
  x_t = (1 - t) x0 + t eps, loss = mean((net(x_t, t, cond) - (eps - x0))^2); backward; clip the global grad
  norm to 1.0; AdamW(lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight decay 1e-4 on the Linear weights).
B2, one DiffusionNFT optimiser step on B (sample, time) rows: v_old from a frozen copy under no_grad, v_theta with
  grad, the loss of docs/algorithms.md §2.3 (beta 1, adaptive x0-space weights, C = 5) written as the official training
  loop writes it; backward, clip, AdamW as B1.
B3, one rollout: B samples, 10-step DPM-Solver++(2M) on the uniform grid, no grad (the library's 'dpm2').

Prints one JSON line on stdout, e.g.
  /usr/bin/python3 bench/pytorch/bench_rows.py --row B1 --device cpu --threads 2 --batch 256
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

if __name__ == "__main__" and "torch" not in sys.modules:
    from threads import preconfigure_threads

    preconfigure_threads(sys.argv[1:])

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# The networks are the PyTorch references of the test oracles.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "reference"))

from dit import DiT, DiTConfig  # noqa: E402
from velocity_net import CONFIG_M, VelocityNet, VelocityNetConfig, uses_weight_decay  # noqa: E402


def load_config(text: Optional[str]) -> Tuple[Any, Any]:
    """(config, network class) of a JSON config; config M when none is given."""
    if text is None:
        return CONFIG_M, VelocityNet
    d = json.loads(text)
    arch = d.get("arch", "mlp")
    if arch == "dit":
        return DiTConfig.from_dict(d), DiT
    if arch != "mlp":
        raise ValueError(f"unsupported arch {arch!r} ('mlp' | 'dit')")
    return VelocityNetConfig.from_dict(d), VelocityNet


def detect_blas() -> str:
    """Name the BLAS torch uses: build config first, then the libraries mapped in."""
    cfg = torch.__config__.show()
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        maps = ""
    text = cfg + "\n" + maps
    low = text.lower()
    if "openblas" in low:
        return "OpenBLAS"
    if "mkl_rt" in low or "libmkl" in low or "blas_info=mkl" in low:
        return "MKL"
    if "blis" in low:
        return "BLIS"
    if "libblas.so" in low:
        return "reference BLAS"
    return "unknown"


def build_optimizer(net: torch.nn.Module) -> torch.optim.Optimizer:
    decay = [p for n, p in net.named_parameters() if uses_weight_decay(n)]
    no_decay = [p for n, p in net.named_parameters() if not uses_weight_decay(n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-4,
        betas=(0.9, 0.999),
        eps=1e-8,
    )


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--row", choices=["B1", "B2", "B3"], default="B1")
    ap.add_argument("--config", type=str, default=None, help="config JSON (default: config M)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the net (CUDA only)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    config, net_type = load_config(args.config)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("CUDA requested but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    if args.compile and dev.type != "cuda":
        print("--compile is only supported with --device cuda", file=sys.stderr)
        return 2
    if args.compile and not hasattr(torch, "compile"):
        print(f"torch {torch.__version__} has no torch.compile", file=sys.stderr)
        return 2

    net = net_type(config).to(dev)
    net.randomize_()  # non-zero everywhere so every matmul does real work
    nparams = sum(p.numel() for p in net.parameters())
    opt = build_optimizer(net)
    model = torch.compile(net) if args.compile else net

    b, d, l, v = args.batch, config.dataDim, config.condSlots, config.vocabSize

    def batch():
        x0 = torch.randn(b, d, device=dev)
        eps = torch.randn(b, d, device=dev)
        t = torch.rand(b, device=dev)
        cond = torch.randint(0, v, (b, l), device=dev, dtype=torch.int32)
        tt = t.unsqueeze(1)
        return x0, eps, t, tt, cond, (1 - tt) * x0 + tt * eps

    def apply(loss: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss

    def flow_matching_step() -> torch.Tensor:
        x0, eps, t, _, cond, xt = batch()
        return apply(F.mse_loss(model(xt, t, cond), eps - x0))

    old = net_type(config).to(dev)
    old.load_state_dict(net.state_dict())
    old.requires_grad_(False)

    def nft_step() -> torch.Tensor:
        beta, clip = 1.0, 5.0
        x0, _, t, tt, cond, xt = batch()
        r = torch.rand(b, device=dev)
        with torch.no_grad():
            v_old = old(xt, t, cond)
        v_th = model(xt, t, cond)
        x0_pos = xt - tt * (beta * v_th + (1 - beta) * v_old)
        x0_neg = xt - tt * ((1 + beta) * v_old - beta * v_th)
        w_pos = (x0_pos - x0).abs().mean(dim=1, keepdim=True).clamp(min=1e-5).detach()
        w_neg = (x0_neg - x0).abs().mean(dim=1, keepdim=True).clamp(min=1e-5).detach()
        l_pos = ((x0_pos - x0) ** 2 / w_pos).mean(dim=1)
        l_neg = ((x0_neg - x0) ** 2 / w_neg).mean(dim=1)
        return apply(clip * (r * l_pos / beta + (1 - r) * l_neg / beta).mean())

    grid = [1.0 - k / 10 for k in range(11)]

    @torch.no_grad()
    def rollout() -> torch.Tensor:
        x = torch.randn(b, d, device=dev)
        cond = torch.randint(0, v, (b, l), device=dev, dtype=torch.int32)
        lam = lambda u: math.log((1 - u) / u)
        prev, h_prev = None, None
        for s, t in zip(grid[:-1], grid[1:]):
            data = x - s * model(x, torch.full((b,), s, device=dev), cond)
            if t == 0:
                x = data
            elif s == 1:
                x = (1 - t) * data + t * x
                prev, h_prev = data, None
            else:
                h = lam(t) - lam(s)
                half_inv_r = 0.0 if h_prev is None else h / (2 * h_prev)
                dd = (1 + half_inv_r) * data - half_inv_r * prev if h_prev is not None else data
                x = (t / s) * x - (1 - t) * math.expm1(-h) * dd
                prev, h_prev = data, h
        return x.sum()

    step = {"B1": flow_matching_step, "B2": nft_step, "B3": rollout}[args.row]

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    # peak memory: on CUDA torch.cuda.max_memory_allocated (reset after model/optimizer
    # creation, so it covers activations, grads and optimizer state of the timed steps);
    # on CPU the growth of the process peak RSS (ru_maxrss, KiB on Linux) from just
    # before the first step to the end, i.e. activations + grads + AdamW state.
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dev.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats(dev)

    for _ in range(args.warmup):
        step()
    sync()

    times: List[float] = []
    last = None
    for _ in range(args.iters):
        t0 = time.perf_counter()
        last = step()
        sync()
        times.append(time.perf_counter() - t0)

    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
        dev_name = torch.cuda.get_device_name(dev)
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        dev_name = "cpu"

    med = statistics.median(times) * 1e3
    mean = statistics.fmean(times) * 1e3
    out: Dict[str, Any] = {
        "row": args.row,
        "impl": "pytorch",
        "device": args.device,
        "device_name": dev_name,
        "threads": args.threads,
        "batch": b,
        "config": config.to_dict(),
        "compile": bool(args.compile),
        "warmup": args.warmup,
        "iters": args.iters,
        "ms_per_step_median": round(med, 3),
        "ms_per_step_mean": round(mean, 3),
        "ms_per_step_min": round(min(times) * 1e3, 3),
        "samples_per_s": round(b / (med / 1e3), 1),
        "peak_mem_mib": round(peak, 1),
        "peak_mem_kind": "cuda_max_memory_allocated" if dev.type == "cuda" else "rss_delta",
        "torch_version": torch.__version__,
        "blas": detect_blas() if dev.type == "cpu" else "cuBLAS",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "params": nparams,
        "final_loss": float(last) if last is not None else None,
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
