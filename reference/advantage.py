"""Independent oracle for optimalityProbability: rewards -> advantages -> r (DiffusionNFT, docs/algorithms.md §2.2).

Usage:  /usr/bin/python3 reference/advantage.py IN.json OUT.json

IN is a JSON list of cases {"rewards": [...], "groups": [...], "advClipMax", "globalStd", "eps"};
OUT is the list of {"advantages": [...], "r": [...]} in the same order. The advantages follow
PerPromptStatTracker.update of flow_grpo/stat_tracking.py (fresh tracker, float64 numpy, np.std
with its default ddof 0), and r the clamp of the training loop of scripts/train_nft_sd3.py.
"""

from __future__ import annotations

import sys

import numpy as np

from json_cases import run


def tracker_update(prompts, rewards, global_std: bool, eps: float) -> np.ndarray:
    prompts = np.array(prompts)
    rewards = np.array(rewards, dtype=np.float64)
    advantages = np.empty_like(rewards) * 0.0
    for prompt in np.unique(prompts):
        prompt_rewards = rewards[prompts == prompt]
        mean = np.mean(prompt_rewards, axis=0, keepdims=True)
        if global_std:
            std = np.std(rewards, axis=0, keepdims=True) + eps
        else:
            std = np.std(prompt_rewards, axis=0, keepdims=True) + eps
        advantages[prompts == prompt] = (prompt_rewards - mean) / std
    return advantages


def optimality(advantages: np.ndarray, adv_clip_max: float) -> np.ndarray:
    clipped = np.clip(advantages, -adv_clip_max, adv_clip_max)
    return np.clip((clipped / adv_clip_max) / 2.0 + 0.5, 0, 1)


def solve(case) -> dict:
    a = tracker_update(case["groups"], case["rewards"], bool(case["globalStd"]), float(case["eps"]))
    return {"advantages": a.tolist(), "r": optimality(a, float(case["advClipMax"])).tolist()}


if __name__ == "__main__":
    sys.exit(run(sys.argv, solve))
