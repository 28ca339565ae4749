"""PyTorch peer for benchmark row B1: one flow-matching training step of the velocity net.

One step: x0 ~ N(0, I), eps ~ N(0, I), t ~ U(0, 1), cond ~ U{0..V-1}^(B, L);
x_t = (1 - t) x0 + t eps, target = eps - x0, loss = mean((net(x_t, t, cond) - target)^2);
backward; clip global grad norm to 1.0; AdamW(lr 1e-4, betas (0.9, 0.999), eps 1e-8,
weight decay 1e-4 on the Linear weights, as docs/network.md's table says).

Prints one JSON line on stdout, e.g.
  /usr/bin/python3 bench/pytorch/bench_b1.py --device cpu --threads 2 --batch 256
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from typing import Any, Dict, List, Optional



def _preconfigure_threads(argv: List[str]) -> None:
    """Set thread env vars before torch (libgomp, OpenBLAS) is loaded.

    Debian's torch runs its elementwise ops on an OpenMP pool and its GEMMs on
    OpenBLAS's own pthread pool. With OpenMP's default active (spinning) wait policy
    the idle OpenMP workers steal the cores OpenBLAS needs, which on a 2-core box
    roughly doubles the step time; OMP_WAIT_POLICY=PASSIVE avoids that. OpenBLAS's
    pool is sized to --threads. Both are only defaults: the environment wins.
    """
    threads = 2
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
        elif a.startswith("--threads="):
            threads = int(a.split("=", 1)[1])
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))


if __name__ == "__main__" and "torch" not in sys.modules:
    _preconfigure_threads(sys.argv[1:])

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from velocity_net import CONFIG_M, VelocityNet, VelocityNetConfig, uses_weight_decay  # noqa: E402


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


def build_optimizer(net: VelocityNet) -> torch.optim.Optimizer:
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
    ap.add_argument("--config", type=str, default=None, help="config JSON (default: config M)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the net (CUDA only)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    config = VelocityNetConfig.from_json(args.config) if args.config else CONFIG_M
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

    net = VelocityNet(config).to(dev)
    net.randomize_()  # non-zero everywhere so every matmul does real work
    nparams = sum(p.numel() for p in net.parameters())
    opt = build_optimizer(net)
    model = torch.compile(net) if args.compile else net

    b, d, l, v = args.batch, config.dataDim, config.condSlots, config.vocabSize

    def step() -> torch.Tensor:
        x0 = torch.randn(b, d, device=dev)
        eps = torch.randn(b, d, device=dev)
        t = torch.rand(b, device=dev)
        cond = torch.randint(0, v, (b, l), device=dev, dtype=torch.int32)
        tt = t.unsqueeze(1)
        xt = (1 - tt) * x0 + tt * eps
        target = eps - x0
        loss = F.mse_loss(model(xt, t, cond), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss

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
        "row": "B1",
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
