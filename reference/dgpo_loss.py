"""Independent oracle for the DGPO loss (docs/algorithms.md §8.2).

Usage:  /usr/bin/python3 reference/dgpo_loss.py IN.safetensors OUT.safetensors

IN holds one or more cases. Metadata `cases` is a JSON list of
{"name", "times", "betaDpo", "clipRange", "klCoef", "emaRef"}; for each case NAME the tensors `NAME.vTheta`,
`NAME.vRef`, `NAME.vOld`, `NAME.target` (B*M, D) F32 (row i: sample i // M at time i % M), `NAME.adv` (B) F32 and
`NAME.groups` (B) I32.

OUT holds `NAME.loss` (1) and `NAME.grad` (B*M, D), both F64: the loss in float64 as the official training step of
Luo-Yihong/DGPO @ 01ceb4b writes it (scripts/train_sd3_dgpo.py: `compute_group_dgpo_loss_allreduce`, L162-192, called
once per training time in the loop L1095-1180, whose accumulated gradient is the mean over the times), with the
group sums of one process, and its gradient with respect to vTheta by autograd.
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


def group_dgpo_loss(model_pred, ref_pred, old_pred, target, advantages, group_ids, beta_dpo, clip_range, ema_ref):
    """One training time's loss over a micro-batch that holds whole groups."""
    dims = tuple(range(1, model_pred.ndim))
    model_losses = ((model_pred - target) ** 2).mean(dim=dims)
    with torch.no_grad():
        ref_losses = ((ref_pred - target) ** 2).mean(dim=dims)
        old_losses = ((old_pred - target) ** 2).mean(dim=dims)
        reference = old_losses if ema_ref else ref_losses
        unique, inverse = torch.unique(group_ids, return_inverse=True)
        diff = advantages * (model_losses.detach() - reference)
        sums = torch.zeros(len(unique), dtype=diff.dtype).index_add_(0, inverse, diff)
        counts = torch.zeros(len(unique), dtype=diff.dtype).index_add_(0, inverse, torch.ones_like(diff))
        weights = torch.sigmoid(beta_dpo / counts * sums)[inverse]
        ratio = torch.exp(old_losses - model_losses.detach())
        clipped = torch.where(advantages > 0, ratio > 1 + clip_range, ratio < 1 - clip_range)
    dsm = torch.where(clipped, model_losses.detach(), model_losses)
    return (weights * advantages * dsm).mean()


def run(in_path: str, out_path: str) -> None:
    tensors, meta = safetensors_io.load(in_path)
    result: Dict[str, torch.Tensor] = {}
    for case in json.loads(meta["cases"]):
        name = case["name"]
        M = int(case["times"])

        def get(key: str) -> torch.Tensor:
            return tensors[f"{name}.{key}"].to(torch.float64)

        v_theta = get("vTheta").requires_grad_(True)
        v_ref, v_old, target = get("vRef"), get("vOld"), get("target")
        adv, groups = get("adv"), tensors[f"{name}.groups"].to(torch.int64)
        dims = tuple(range(1, v_theta.ndim))
        loss = torch.zeros((), dtype=torch.float64)
        for j in range(M):
            rows = torch.arange(j, v_theta.shape[0], M)
            loss = loss + group_dgpo_loss(
                v_theta[rows], v_ref[rows], v_old[rows], target[rows], adv, groups,
                float(case["betaDpo"]), float(case["clipRange"]), bool(case["emaRef"]),
            ) / M
        if float(case["klCoef"]) > 0:
            loss = loss + float(case["klCoef"]) * ((v_theta - v_ref) ** 2).mean(dim=dims).mean()
        loss.backward()
        result[f"{name}.loss"] = loss.detach().reshape(1)
        result[f"{name}.grad"] = v_theta.grad.detach()
    safetensors_io.save(out_path, result, {"torch": torch.__version__})


if __name__ == "__main__":
    sys.exit(safetensors_io.run_script(run, sys.argv))
