"""PyTorch peer of row B6 (bench/NOTES.md): one DiffusionNFT or FlowGRPO epoch on a checkpoint's network.

The epoch is ours (docs/algorithms.md §4) written in PyTorch on the reference networks, with the formulas' one
home each in reference/: the DiT (dit.py), DPM-Solver++(2M) (solvers_reference.py), the advantages and r
(advantage.py), the NFT loss (nft_loss.py), the SDE and the GRPO loss (flowgrpo.py); AdamW is torch.optim.AdamW
with the global gradient-norm clip. It takes the trainer's resolved options (`trainer.resolvedOptions`) and refuses
any it does not implement.

  epoch.py serve --method nft|flowgrpo --checkpoint CKPT --options JSON --prompts JSON [--threads 2]
      Prints {"ready": {...}}, then runs one epoch for each {"epoch": true} line on stdin and prints
      {"epoch": {"rollout", "reward", "train", "total"}} (seconds), until stdin ends. Rewards come from the parent
      process: each batch of samples goes out on stdout as {"score": {"prompts": [...], "samples": base64 float32}}
      and the scores come back on stdin as {"rewards": [...]} (bench/epoch.ts serves them with the TypeScript
      reward, and alternates the peer's epochs with ours).
  epoch.py step METHOD CKPT IN.safetensors OUT.safetensors
      One training step on given inputs (test/epoch-peer.test.ts): θ, θ_old and θ_ref from CKPT, the rows and the
      options in IN; OUT holds the loss, the gradient norm and θ after the AdamW step.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

if __name__ == "__main__" and "torch" not in sys.modules:
    from threads import preconfigure_threads

    preconfigure_threads(sys.argv[1:])

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "reference"))

import safetensors_io  # noqa: E402
from advantage import optimality, tracker_update  # noqa: E402
from bench_rows import detect_blas  # noqa: E402
from flowgrpo import SdeCoefficients, grpo_loss, log_prob, sde_coefficients, sde_mean  # noqa: E402
from nft_loss import nft_loss  # noqa: E402
from solvers_reference import dpm2  # noqa: E402
from state_dict import build  # noqa: E402
from velocity_net import uses_weight_decay  # noqa: E402

Net = torch.nn.Module
SETS = ("old", "ref", "ema")
STD_EPS = 1e-4  # the advantages' eps (lib/options/advantage.ts)


def load_sets(path: str) -> Tuple[Dict[str, Any], Dict[str, Net]]:
    """The config and a network for θ and each parameter set of a checkpoint (prefixes old., ref., ema.)."""
    tensors, meta = safetensors_io.load(path)
    cfg = json.loads(meta["dnft.config"])
    nets: Dict[str, Net] = {}
    for name in ("theta",) + SETS:
        prefix = "" if name == "theta" else f"{name}."
        net = build(cfg)
        keys = net.state_dict().keys()
        if not all(prefix + k in tensors for k in keys):
            if name == "theta":
                raise ValueError(f"{path} holds no full parameter set")
            continue
        net.load_state_dict({k: tensors[prefix + k] for k in keys}, strict=True)
        net.requires_grad_(name == "theta")
        nets[name] = net
    return cfg, nets


def copy_set(nets: Dict[str, Net], cfg: Dict[str, Any], name: str) -> None:
    """A parameter set `name` equal to θ (a trainer's start of a phase)."""
    net = build(cfg)
    net.load_state_dict(nets["theta"].state_dict())
    net.requires_grad_(False)
    nets[name] = net


@torch.no_grad()
def blend(dst: Net, eta: float, src: Net) -> None:
    """dst ← η·dst + (1 − η)·src, the soft update of θ_old and the EMA."""
    for d, s in zip(dst.parameters(), src.parameters()):
        d.mul_(eta).add_(s, alpha=1.0 - eta)


def make_optimizer(net: Net, o: Dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW as lib/options/optimizer.ts: decay on the Linear weights only, constant rate (the peer implements no schedule)."""
    if o["warmupSteps"] != 0 or o["schedule"] != "constant":
        raise ValueError("the PyTorch peer implements the constant learning rate only")
    decay = [p for n, p in net.named_parameters() if uses_weight_decay(n)]
    rest = [p for n, p in net.named_parameters() if not uses_weight_decay(n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": o["weightDecay"]}, {"params": rest, "weight_decay": 0.0}],
        lr=o["lr"],
        betas=(o["beta1"], o["beta2"]),
        eps=o["eps"],
    )


def apply(net: Net, opt: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float) -> float:
    """Backward, the global-norm clip (0: none) and one AdamW step; returns the norm before clipping."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm if max_grad_norm > 0 else math.inf)
    opt.step()
    return float(norm)


def nft_step(
    nets: Dict[str, Net],
    opt: torch.optim.Optimizer,
    o: Dict[str, Any],
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    r: torch.Tensor,
    tokens: torch.Tensor,
) -> Tuple[float, float]:
    """One DiffusionNFT step on (sample, time) rows (docs/algorithms.md §2.4): v_old (and v_ref), v_θ, the loss."""
    kl = o["klCoef"] > 0
    with torch.no_grad():
        v_old = nets["old"](xt, t, tokens)
        v_ref = nets["ref"](xt, t, tokens) if kl else None
    v = nets["theta"](xt, t, tokens)
    loss = nft_loss(v, v_old, v_ref, xt, x0, t, r, o["beta"], o["advClipMax"], o["adaptive"], o["klCoef"])
    return float(loss), apply(nets["theta"], opt, loss, o["maxGradNorm"])


def grpo_step(
    nets: Dict[str, Net],
    opt: torch.optim.Optimizer,
    o: Dict[str, Any],
    x: torch.Tensor,
    x_next: torch.Tensor,
    t: torch.Tensor,
    coefs: List[SdeCoefficients],
    advantages: torch.Tensor,
    logp_old: torch.Tensor,
    tokens: torch.Tensor,
) -> Tuple[float, float, Dict[str, float]]:
    """One FlowGRPO step on transition rows (docs/algorithms.md §3.5): v_ref, v_θ, the GRPO loss."""
    kl = o["klCoef"] > 0
    with torch.no_grad():
        v_ref = nets["ref"](x, t, tokens) if kl else None
    v = nets["theta"](x, t, tokens)
    loss, stats = grpo_loss(v, v_ref, x, x_next, coefs, advantages, logp_old, o["clipRange"], o["klCoef"], o["logpSum"])
    return float(loss), apply(nets["theta"], opt, loss, o["maxGradNorm"]), stats


@torch.no_grad()
def rollout_dpm2(net: Net, tokens: torch.Tensor, grid: Sequence[float], dim: int) -> torch.Tensor:
    b = tokens.shape[0]
    return dpm2(lambda x, s: net(x, torch.full((b,), s), tokens), torch.randn(b, dim), list(grid))


@torch.no_grad()
def rollout_sde(
    net: Net, tokens: torch.Tensor, grid: Sequence[float], a: float, logp_sum: bool, dim: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The SDE rollout with every state (N + 1, B, D) and each step's log p (N, B)."""
    b = tokens.shape[0]
    x = torch.randn(b, dim)
    states, logps = [x], []
    for s, t in zip(grid[:-1], grid[1:]):
        c = sde_coefficients(s, t, a, grid[1])
        mean = sde_mean(x, net(x, torch.full((b,), s), tokens), c)
        x = mean + c.std * torch.randn_like(x)
        logps.append(log_prob(x, mean, torch.full((b, 1), c.std), logp_sum))
        states.append(x)
    return torch.stack(states), torch.stack(logps)


def draw_groups(prompts: List[List[int]], groups: int, size: int) -> Tuple[List[int], np.ndarray]:
    """`groups` distinct prompts (repeated when there are fewer), each `size` times: prompt index and group of each."""
    order = torch.randperm(len(prompts)).tolist()
    chosen = [order[g % len(order)] for g in range(groups) for _ in range(size)]
    return chosen, np.repeat(np.arange(groups), size)


class Epochs:
    """The state of a run: the networks, the optimiser, the step count, and the options."""

    def __init__(self, method: str, checkpoint: str, options: Dict[str, Any], prompts: List[List[int]]) -> None:
        self.method, self.o, self.prompts = method, options, prompts
        self.native = options["native"]
        self.cfg, self.nets = load_sets(checkpoint)
        self.dim = self.cfg["dataDim"]
        check_supported(method, options)
        # The start of a phase: the parameter sets are copies of θ, the optimiser is new.
        sets = (["old"] if method == "nft" else []) + (["ref"] if self.native["klCoef"] > 0 else [])
        for name in sets + (["ema"] if options["ema"] > 0 else []):
            copy_set(self.nets, self.cfg, name)
        self.opt = make_optimizer(self.nets["theta"], self.native)
        self.step = 0

    def run(self, score: Callable[[torch.Tensor, List[int]], List[float]]) -> Dict[str, float]:
        """One epoch; the seconds of its rollout, reward and training phases."""
        o = self.o
        start = time.perf_counter()
        chosen, group_ids = draw_groups(self.prompts, o["groups"], o["groupSize"])
        tokens = torch.tensor([self.prompts[i] for i in chosen], dtype=torch.int64)
        grid = o["grid"]
        if self.method == "nft":
            x = rollout_dpm2(self.nets["old"], tokens, grid, self.dim)
        else:
            states, logp = rollout_sde(self.nets["theta"], tokens, grid, self.native["sdeA"], self.native["logpSum"],
                                       self.dim)
            x = states[-1]
        sampled = time.perf_counter()
        rewards = np.asarray(score(x, chosen), dtype=np.float64)
        scored = time.perf_counter()
        advantages = tracker_update(group_ids, rewards, o["std"] == "global", STD_EPS)
        if self.method == "nft":
            self.train_nft(x, tokens, advantages)
        else:
            self.train_grpo(states, logp, tokens, advantages)
        if o["ema"] > 0:
            blend(self.nets["ema"], min((1 + self.step) / (10 + self.step), o["ema"]), self.nets["theta"])
        done = time.perf_counter()
        return {"rollout": sampled - start, "reward": scored - sampled, "train": done - scored, "total": done - start}

    def train_nft(self, x0: torch.Tensor, tokens: torch.Tensor, advantages: np.ndarray) -> None:
        n, o = x0.shape[0], self.native
        r = torch.tensor(optimality(advantages, o["advClipMax"]), dtype=torch.float32)
        times = torch.tensor(self.o["grid"][:-1], dtype=torch.float32)
        k = o["timesPerSample"]
        steps = self.o["optimizerSteps"]
        for s in range(steps):
            rows = torch.arange(s * n // steps, (s + 1) * n // steps).repeat_interleave(k)
            # K distinct grid times per sample.
            t = torch.cat([times[torch.randperm(len(times))[:k]] for _ in range(len(rows) // k)])
            x0_rows = x0[rows]
            xt = (1 - t[:, None]) * x0_rows + t[:, None] * torch.randn_like(x0_rows)
            nft_step(self.nets, self.opt, o, x0_rows, xt, t, r[rows], tokens[rows])
        self.step += steps
        blend(self.nets["old"], min(0.001 * self.step, 0.5), self.nets["theta"])

    def train_grpo(self, states: torch.Tensor, logp: torch.Tensor, tokens: torch.Tensor, adv: np.ndarray) -> None:
        o, grid = self.native, self.o["grid"]
        clipped = np.clip(adv, -self.o["advClipMax"], self.o["advClipMax"])
        kept = [i for i in range(len(clipped)) if not (self.o["filter"] and clipped[i] == 0)]
        steps = min(self.o["optimizerSteps"], len(kept))
        trained = o["trainSteps"]
        coefs = [sde_coefficients(grid[n], grid[n + 1], o["sdeA"], grid[1]) for n in range(trained)]
        for s in range(steps):
            part = kept[s * len(kept) // steps : (s + 1) * len(kept) // steps]
            b = torch.tensor(part).repeat_interleave(trained)  # rows (sample, transition), sample-major
            n = torch.arange(trained).repeat(len(part))
            grpo_step(
                self.nets,
                self.opt,
                o,
                states[n, b],
                states[n + 1, b],
                torch.tensor([grid[i] for i in n.tolist()], dtype=torch.float32),
                [coefs[i] for i in n.tolist()],
                torch.tensor(clipped[b.numpy()], dtype=torch.float32),
                logp[n, b],
                tokens[b],
            )
        self.step += steps


def check_supported(method: str, o: Dict[str, Any]) -> None:
    """The options this peer implements: the trainers' defaults on shapes (no CFG, no micro-batches, no LoRA).

    DiffusionNFT trains at grid times: resolvedOptions do not record `timeSampling`, so 'uniform' goes unnoticed.
    """
    native = o["native"]
    wanted = {"microBatch": 0, "lora": None}
    if method == "nft":
        wanted.update({"solver": "dpm2", "eta": "default"})
        if native["positiveOnly"] or native["timesPerSample"] > len(o["grid"]) - 1:
            raise ValueError("the PyTorch peer implements the NFT loss with both terms and grid times only")
    else:
        if native["cfgScale"] != 1:
            raise ValueError("the PyTorch peer implements FlowGRPO without guidance only")
    for key, value in wanted.items():
        if o.get(key) != value:
            raise ValueError(f"the PyTorch peer implements {key} = {value!r} only, got {o.get(key)!r}")


def serve_score(x: torch.Tensor, chosen: List[int]) -> List[float]:
    """Sends the samples to the parent for scoring and reads the rewards back (see the module's docstring)."""
    samples = base64.b64encode(x.contiguous().numpy().astype("<f4").tobytes()).decode("ascii")
    print(json.dumps({"score": {"prompts": chosen, "samples": samples}}), flush=True)
    line = sys.stdin.readline()
    if not line:
        raise EOFError("the parent closed stdin before sending rewards")
    return json.loads(line)["rewards"]


def serve(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run = Epochs(args.method, args.checkpoint, json.loads(args.options), json.loads(args.prompts))
    print(json.dumps({"ready": {"torch_version": torch.__version__, "blas": detect_blas()}}), flush=True)
    while line := sys.stdin.readline():
        if not json.loads(line).get("epoch"):
            raise ValueError(f"expected an epoch request, got {line.strip()!r}")
        print(json.dumps({"epoch": run.run(serve_score)}), flush=True)
    return 0


def run_step(method: str, checkpoint: str, in_path: str, out_path: str) -> None:
    """One training step on the inputs of IN (rows as the native step forms them)."""
    torch.set_num_threads(1)
    tensors, meta = safetensors_io.load(in_path)
    o = json.loads(meta["options"])
    _, nets = load_sets(checkpoint)
    opt = make_optimizer(nets["theta"], o)
    tokens = tensors["tokens"].long()
    stats: Dict[str, float] = {}
    if method == "nft":
        loss, norm = nft_step(nets, opt, o, tensors["x0"], tensors["xt"], tensors["t"], tensors["r"], tokens)
    else:
        grid = json.loads(meta["grid"])
        transition = tensors["transition"].tolist()
        coefs = [sde_coefficients(grid[n], grid[n + 1], o["sdeA"], grid[1]) for n in transition]
        loss, norm, stats = grpo_step(
            nets, opt, o, tensors["x"], tensors["xNext"], tensors["t"], coefs, tensors["advantages"],
            tensors["logpOld"], tokens,
        )
    out = {f"theta.{k}": v.detach() for k, v in nets["theta"].state_dict().items()}
    out["loss"] = torch.tensor([loss], dtype=torch.float64)
    out["gradNorm"] = torch.tensor([norm], dtype=torch.float64)
    safetensors_io.save(out_path, out, {"stats": json.dumps(stats)})


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["step"] and len(argv) == 5:
        run_step(*argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["serve"])
    ap.add_argument("--method", choices=["nft", "flowgrpo"], required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--options", required=True, help="the trainer's resolvedOptions as JSON")
    ap.add_argument("--prompts", required=True, help="the training prompts' tokens as a JSON list of lists")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    return serve(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
