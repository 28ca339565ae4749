"""CPS's step and log-probability, and the losses of the likelihood methods on it and on GRPO-Guard's RatioNorm, in
float64 PyTorch with gradients by autograd (docs/algorithms.md §9).

Transcribed from the official code as ../shared/spec/methods.md §6.2 and §7.3 read it (no line numbers are given
there, so the functions are named):
- CPS: `sde_step_with_logprob` of `flow_grpo/diffusers_patch/sd3_sde_with_logprob.py` in yifan123/flow_grpo @ 54809b5,
  branch `sde_type == "cps"` (the same step as IamCreateAI/FlowCPS @ 814c359): the step, and its log-probability
  `-((prev_sample.detach() - prev_sample_mean) ** 2)` averaged over the dimensions.
- GRPO-Guard: the training loop of `scripts/train_sd3_GRPO_Guard.py` in zhtmike/flow_grpo @ 2e2f712 with
  `rationorm` on: the mean bias from the stored `prev_sample_mean`, the ratio exp((log p − log p_old + bias)·std), the
  PPO clip, and the loss divided by |dt|.
The PPO objective of the CPS rows is flow_grpo's `train_sd3_fast.py` @ 74db691 (that of reference/flowgrpo.py).

`sde_methods.py IN.json OUT.json` (reference/json_cases.py): each case is {"kind": "cps_step" | "grpo" | "guard", ...},
answered with the values and gradients test/methods-sde.test.ts compares.
"""

from __future__ import annotations

import math
import sys

import torch

from flowgrpo import sde_coefficients
from json_cases import run

torch.set_default_dtype(torch.float64)


def cps_step(x, v, t: float, t_next: float, a: float):
    """The CPS step as the code writes it: x̂0, ε̂, std = t'·sin(aπ/2), mean = (1 − t')·x̂0 + √(t'² − std²)·ε̂."""
    x0 = x - t * v
    eps = x + (1.0 - t) * v
    std = t_next * math.sin(a * math.pi / 2)
    mean = (1.0 - t_next) * x0 + math.sqrt(t_next**2 - std**2) * eps
    return mean, std


def cps_log_prob(x_next, mean):
    """The code's CPS log-probability: every constant dropped, the mean over the dimensions."""
    return -((x_next.detach() - mean) ** 2).mean(dim=-1)


def ppo(log_ratio, advantages, clip_range):
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return torch.maximum(unclipped, clipped), ratio


def solve(case):
    kind = case["kind"]
    if kind == "cps_step":
        x, v, z = (torch.tensor(case[k]) for k in ("x", "v", "z"))
        v = v.clone().requires_grad_(True)
        mean, std = cps_step(x, v, case["t"], case["tNext"], case["a"])
        x_next = mean.detach() + std * z
        logp = cps_log_prob(x_next, mean)
        (dlogp,) = torch.autograd.grad(logp, v)
        return {
            "mean": mean.tolist(),
            "xNext": x_next.tolist(),
            "std": std,
            "logp": float(logp),
            "dlogpDv": dlogp.tolist(),
        }
    x, x_next, v = (torch.tensor(case[k]) for k in ("x", "xNext", "vTheta"))
    v = v.clone().requires_grad_(True)
    adv, logp_old = torch.tensor(case["advantages"]), torch.tensor(case["logpOld"])
    rows = []
    for r, (t, t_next) in enumerate(zip(case["t"], case["tNext"])):
        if kind == "grpo":  # CPS rows (the FlowGRPO rows are reference/flowgrpo.py's)
            mean, _ = cps_step(x[r], v[r], t, t_next, case["a"])
            rows.append((cps_log_prob(x_next[r], mean), None, None))
        else:
            c = sde_coefficients(t, t_next, case["a"], t_next)
            mean = c.x_coef * x[r] + c.v_coef * v[r]
            per = -((x_next[r] - mean) ** 2) / (2 * c.std**2) - math.log(c.std) - math.log(math.sqrt(2 * math.pi))
            bias = ((mean - torch.tensor(case["meanOld"][r])) ** 2).mean() / (2 * c.std**2)
            rows.append((per.mean(), bias, (c.std, t - t_next)))
    losses, ratios = [], []
    for r, (logp, bias, guard) in enumerate(rows):
        if kind == "grpo":
            loss, ratio = ppo(logp - logp_old[r], adv[r], case["clipRange"])
        else:
            std, abs_dt = guard
            loss, ratio = ppo((logp - logp_old[r] + bias) * std, adv[r], case["clipRange"])
            loss = loss / abs_dt
        losses.append(loss)
        ratios.append(float(ratio))
    total = torch.stack(losses).mean()
    (grad,) = torch.autograd.grad(total, v)
    return {"loss": float(total), "grad": grad.flatten().tolist(), "ratios": ratios}


if __name__ == "__main__":
    sys.exit(run(sys.argv, solve))
