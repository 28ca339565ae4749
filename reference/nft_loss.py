"""Independent oracle for the DiffusionNFT loss (docs/algorithms.md §2.3).

Usage:  /usr/bin/python3 reference/nft_loss.py IN.safetensors OUT.safetensors

IN holds one or more cases. Metadata `cases` is a JSON list of
{"name", "beta", "advClipMax", "adaptive", "klCoef", "positiveOnly"}; for each case NAME the tensors
`NAME.vTheta`, `NAME.vOld`, `NAME.xt`, `NAME.x0` (B, D) F32, `NAME.t`, `NAME.r` (B) F32,
and `NAME.vRef` (B, D) F32 when klCoef > 0.

OUT holds `NAME.loss` (1) and `NAME.grad` (B, D), both F64: the loss computed in float64
as the official training loop of NVlabs/DiffusionNFT (scripts/train_nft_sd3.py) writes it,
and its gradient with respect to vTheta by autograd. With adaptive false the x0-space
weighting is replaced by the plain velocity MSE of the paper's Eq. 5 against
v = (x_t - x0) / t, scaled the same way. With positiveOnly true (the paper's ablation) the
negative term is dropped: r * positive_loss / beta alone.
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


def nft_loss(
    forward_prediction: torch.Tensor,
    old_prediction: torch.Tensor,
    ref_prediction: torch.Tensor | None,
    xt: torch.Tensor,
    x0: torch.Tensor,
    t: torch.Tensor,
    r: torch.Tensor,
    beta: float,
    adv_clip_max: float,
    adaptive: bool,
    kl_coef: float,
    positive_only: bool = False,
) -> torch.Tensor:
    """The training-loop loss, variable names as in the official code."""
    dims = tuple(range(1, x0.ndim))
    t_expanded = t.view(-1, *([1] * (x0.ndim - 1)))
    positive_prediction = beta * forward_prediction + (1 - beta) * old_prediction.detach()
    implicit_negative_prediction = (1.0 + beta) * old_prediction.detach() - beta * forward_prediction
    if adaptive:
        x0_prediction = xt - t_expanded * positive_prediction
        with torch.no_grad():
            weight_factor = torch.abs(x0_prediction.double() - x0.double()).mean(dim=dims, keepdim=True).clip(min=1e-5)
        positive_loss = ((x0_prediction - x0) ** 2 / weight_factor).mean(dim=dims)
        negative_x0_prediction = xt - t_expanded * implicit_negative_prediction
        with torch.no_grad():
            negative_weight_factor = (
                torch.abs(negative_x0_prediction.double() - x0.double()).mean(dim=dims, keepdim=True).clip(min=1e-5)
            )
        negative_loss = ((negative_x0_prediction - x0) ** 2 / negative_weight_factor).mean(dim=dims)
    else:
        v = (xt - x0) / t_expanded
        positive_loss = ((positive_prediction - v) ** 2).mean(dim=dims)
        negative_loss = ((implicit_negative_prediction - v) ** 2).mean(dim=dims)
    ori_policy_loss = r * positive_loss / beta
    if not positive_only:
        ori_policy_loss = ori_policy_loss + (1 - r) * negative_loss / beta
    policy_loss = (ori_policy_loss * adv_clip_max).mean()
    loss = policy_loss
    if kl_coef > 0:
        assert ref_prediction is not None
        kl_loss = ((forward_prediction - ref_prediction) ** 2).mean(dim=dims)
        loss = loss + kl_coef * torch.mean(kl_loss)
    return loss


def run(in_path: str, out_path: str) -> None:
    tensors, meta = safetensors_io.load(in_path)
    cases = json.loads(meta["cases"])
    result: Dict[str, torch.Tensor] = {}
    for case in cases:
        name = case["name"]

        def get(key: str) -> torch.Tensor:
            return tensors[f"{name}.{key}"].to(torch.float64)

        v_theta = get("vTheta").requires_grad_(True)
        kl_coef = float(case["klCoef"])
        loss = nft_loss(
            v_theta,
            get("vOld"),
            get("vRef") if kl_coef > 0 else None,
            get("xt"),
            get("x0"),
            get("t"),
            get("r"),
            float(case["beta"]),
            float(case["advClipMax"]),
            bool(case["adaptive"]),
            kl_coef,
            bool(case.get("positiveOnly", False)),
        )
        loss.backward()
        result[f"{name}.loss"] = loss.detach().reshape(1)
        result[f"{name}.grad"] = v_theta.grad.detach()
    safetensors_io.save(out_path, result, {"torch": torch.__version__})


if __name__ == "__main__":
    sys.exit(safetensors_io.run_script(run, sys.argv))
