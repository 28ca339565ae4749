"""Independent oracle for the AWM loss (docs/algorithms.md §7.2).

Usage:  /usr/bin/python3 reference/awm_loss.py IN.safetensors OUT.safetensors

IN holds one or more cases. Metadata `cases` is a JSON list of
{"name", "weighting", "ghuberPower", "klCoef", "emaCoef", "clipRange"}; for each case NAME the tensors
`NAME.vTheta`, `NAME.vRef`, `NAME.vEma`, `NAME.x0`, `NAME.eps` (B, D) F32 and `NAME.t`, `NAME.adv` (B) F32.

OUT holds `NAME.loss` (1) and `NAME.grad` (B, D), both F64: the loss in float64 as the official training step of
scxue/advantage_weighted_matching @ be51372 writes it (scripts/train_sd3_awm.py: the weighted log-likelihood of
`compute_log_prob_awm`, L210-252; the clipped ratio objective and the two KL terms of the training loop, L1296-1352),
on-policy (the old log-likelihood is the detached current one), and its gradient with respect to vTheta by autograd.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Dict

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io  # noqa: E402


def log_prob_awm(model_pred: torch.Tensor, target: torch.Tensor, t: torch.Tensor, weighting: str, power: float):
    """The per-sample weighted flow-matching log-likelihood."""
    dims = tuple(range(1, model_pred.ndim))
    err = ((model_pred - target) ** 2).mean(dim=dims)
    if weighting == "ghuber":
        delta = 1e-10
        return -(t / power) * ((err + delta) ** power - delta**power)
    if weighting == "uniform":
        return -err
    if weighting == "t":
        return -t * err
    if weighting == "t2":
        return -(t**2) * err
    if weighting == "huber":
        return -t * (torch.sqrt(err + 1e-10) - 1e-5)
    raise ValueError(weighting)


def awm_loss(v_theta, v_ref, v_ema, x0, eps, t, adv, case) -> torch.Tensor:
    target = eps - x0
    log_prob = log_prob_awm(v_theta, target, t, case["weighting"], float(case["ghuberPower"]))
    old_log_prob = log_prob.detach()
    ratio = torch.exp(log_prob - old_log_prob)
    clip = float(case["clipRange"])
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    policy_loss = torch.mean(torch.maximum(unclipped, clipped))
    dims = tuple(range(1, v_theta.ndim))
    loss = policy_loss
    if float(case["klCoef"]) > 0:
        loss = loss + float(case["klCoef"]) * ((v_theta - v_ref) ** 2).mean(dim=dims).mean()
    if float(case["emaCoef"]) > 0:
        loss = loss + float(case["emaCoef"]) * ((v_theta - v_ema) ** 2).mean(dim=dims).mean()
    return loss


def run(in_path: str, out_path: str) -> None:
    tensors, meta = safetensors_io.load(in_path)
    result: Dict[str, torch.Tensor] = {}
    for case in json.loads(meta["cases"]):
        name = case["name"]

        def get(key: str) -> torch.Tensor:
            return tensors[f"{name}.{key}"].to(torch.float64)

        v_theta = get("vTheta").requires_grad_(True)
        loss = awm_loss(v_theta, get("vRef"), get("vEma"), get("x0"), get("eps"), get("t"), get("adv"), case)
        loss.backward()
        result[f"{name}.loss"] = loss.detach().reshape(1)
        result[f"{name}.grad"] = v_theta.grad.detach()
    safetensors_io.save(out_path, result, {"torch": torch.__version__})


if __name__ == "__main__":
    sys.exit(safetensors_io.run_script(run, sys.argv))
