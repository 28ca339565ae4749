"""FlowGRPO's SDE step, its log-probability and the GRPO loss in PyTorch (docs/algorithms.md §3.2–3.4).

Written as the official training code of yifan123/flow_grpo computes them (sde_step_with_logprob and the PPO-clipped
loss of scripts/train_sd3.py), on rows (R, D): the B6 peer (bench/pytorch/epoch.py) rolls out and trains with these,
and test/epoch-peer.test.ts checks its training step against ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SdeCoefficients:
    """One step from t to t_next < t: mean = x_coef·x + v_coef·v, x_next = mean + std·z."""

    x_coef: float
    v_coef: float
    sigma: float  # σ_t, the diffusion coefficient the KL term divides by
    std: float  # σ_t·√(t − t_next)


def sde_coefficients(t: float, t_next: float, a: float, t_first: float) -> SdeCoefficients:
    """σ_t = a·√(t/(1 − t)), with 1 − t_first under the root at t = 1 (the code's guard), in float64."""
    dt = t_next - t
    sigma = a * math.sqrt(t / (1.0 - (t_first if t == 1.0 else t)))
    k = sigma * sigma / (2.0 * t)
    return SdeCoefficients(1.0 + k * dt, (1.0 + k * (1.0 - t)) * dt, sigma, sigma * math.sqrt(-dt))


def sde_mean(x: torch.Tensor, v: torch.Tensor, c: SdeCoefficients) -> torch.Tensor:
    return c.x_coef * x + c.v_coef * v


def log_prob(x_next: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, logp_sum: bool = False) -> torch.Tensor:
    """log N(x_next; mean, std²) per row, averaged over the dimensions as the code (or summed); std (R, 1)."""
    per = -((x_next.detach() - mean) ** 2) / (2 * std**2) - torch.log(std) - math.log(math.sqrt(2 * math.pi))
    return per.sum(dim=1) if logp_sum else per.mean(dim=1)


def grpo_loss(
    v_theta: torch.Tensor,
    v_ref: torch.Tensor | None,
    x: torch.Tensor,
    x_next: torch.Tensor,
    coefs: list[SdeCoefficients],
    advantages: torch.Tensor,
    logp_old: torch.Tensor,
    clip_range: float,
    kl_coef: float,
    logp_sum: bool = False,
) -> tuple[torch.Tensor, dict]:
    """The PPO-clipped objective over R transitions (row i takes coefs[i]) plus β_KL·mean_d (mean − mean_ref)²/(2σ²).

    Returns the loss and the statistics the trainer reports: clip fraction, ½·mean (log p − log p_old)², mean ratio.
    """
    dtype = v_theta.dtype
    col = lambda values: torch.tensor(values, dtype=torch.float64).to(dtype).unsqueeze(1)  # noqa: E731
    x_coef, v_coef = col([c.x_coef for c in coefs]), col([c.v_coef for c in coefs])
    std, sigma = col([c.std for c in coefs]), col([c.sigma for c in coefs])
    mean = x_coef * x + v_coef * v_theta
    logp = log_prob(x_next, mean, std, logp_sum)
    ratio = torch.exp(logp - logp_old)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = torch.mean(torch.maximum(unclipped, clipped))
    if kl_coef > 0:
        assert v_ref is not None
        mean_ref = x_coef * x + v_coef * v_ref
        kl = ((mean - mean_ref) ** 2).mean(dim=1, keepdim=True) / (2 * sigma**2)
        loss = loss + kl_coef * torch.mean(kl)
    with torch.no_grad():
        stats = {
            "clipFraction": float((torch.abs(ratio - 1.0) > clip_range).double().mean()),
            "approxKl": float(0.5 * torch.mean((logp.double() - logp_old.double()) ** 2)),
            "ratioMean": float(ratio.double().mean()),
        }
    return loss, stats
