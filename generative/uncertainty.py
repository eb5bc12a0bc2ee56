"""Scoring the spread of sampled completions: CRPS and interval coverage (CSDI's metrics).

The continuous ranked probability score of an ensemble x_1..x_S against an observation y is
CRPS = E|X - y| - 1/2 E|X - X'| (Gneiting & Raftery 2007), computed by ``properscoring``; for a
single sample it is the absolute error, so CRPS and MAE share units. Coverage is the share of
targets inside the central 50% and 90% sample intervals: a calibrated sampler covers about 50%
and 90% of them.
"""

from __future__ import annotations

import numpy as np
import properscoring
import torch
from torch import Tensor

LEVELS = (0.5, 0.9)


def sample_scores(samples: Tensor, truth: Tensor, target_mask: Tensor,
                  groups: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """{group: {"crps", "cover50", "cover90"}} over the target coordinates of each group.

    samples: (S, N, C, T, H, W); truth: (N, C, T, H, W); target_mask: (N, T, H, W).
    """
    out = {}
    picked = target_mask.bool()
    for name, idx in groups.items():
        # (S, N, c, T, H, W) -> (S, targets) on the target coordinates of these channels
        ens = samples[:, :, idx].permute(0, 1, 3, 4, 5, 2)[:, picked]   # (S, K, c)
        obs = truth[:, idx].permute(0, 2, 3, 4, 1)[picked]               # (K, c)
        if obs.numel() == 0:
            continue
        ens = ens.reshape(ens.shape[0], -1).double().numpy()
        obs = obs.reshape(-1).double().numpy()
        row = {"crps": float(properscoring.crps_ensemble(obs, ens, axis=0).mean())}
        for level in LEVELS:
            low, high = np.quantile(ens, [(1 - level) / 2, (1 + level) / 2], axis=0)
            row[f"cover{round(100 * level)}"] = float(((obs >= low) & (obs <= high)).mean())
        out[name] = row
    return out


def as_samples(point: Tensor) -> Tensor:
    """A point forecast (N, C, T, H, W) as a one-sample ensemble (its CRPS is its MAE)."""
    return torch.as_tensor(point).unsqueeze(0)
