"""Baselines evaluated beside U-MASK (U-MASK paper section 7.1-7.2).

- historical average (HA): per user, channel and cell, the mean of the revealed evidence slots,
  falling back to the training population's mean at that (channel, slot, cell) when a user has
  no evidence there;
- seasonal naive: the value one season earlier (the latest revealed slot t - m * period), with
  the HA as fallback;
- the RQ2 fixed-mask control is the same backbone trained with ``mask_policy="fixed"``
  (see generative.umask.topk.fixed_random_mask); it is built by the caller, not here.
All functions take and return data-unit tensors: values (N, C, T, H, W), masks (N, T, H, W).
"""

from __future__ import annotations

import torch
from torch import Tensor


def population_mean(values: Tensor, scored_mask: Tensor) -> Tensor:
    """Mean over users of every (C, T, H, W) entry where it is scored: (C, T, H, W)."""
    m = scored_mask.unsqueeze(1).to(values.dtype)                      # (N, 1, T, H, W)
    total = (values * m).sum(0)
    count = m.sum(0).expand_as(total)
    return torch.where(count > 0, total / count.clamp_min(1.0), torch.zeros_like(total))


def historical_average(values: Tensor, evidence: Tensor, population: Tensor | None = None
                       ) -> Tensor:
    """HA forecast for every slot: (N, C, T, H, W)."""
    ev = evidence.unsqueeze(1).to(values.dtype)                        # (N, 1, T, H, W)
    count = ev.sum(2, keepdim=True)                                    # (N, 1, 1, H, W)
    mean = (values * ev).sum(2, keepdim=True) / count.clamp_min(1.0)   # (N, C, 1, H, W)
    out = mean.expand_as(values)
    if population is None:
        return out.clone()
    return torch.where(count > 0, out, population.unsqueeze(0).expand_as(values))


def seasonal_naive(values: Tensor, evidence: Tensor, period: int,
                   fallback: Tensor) -> Tensor:
    """x^(t) = x(t - m * period) for the smallest m >= 1 whose slot is revealed; else fallback."""
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    out = fallback.clone()
    filled = torch.zeros_like(evidence, dtype=torch.bool)              # (N, T, H, W)
    T = values.shape[2]
    for t in range(T):
        for s in range(t - period, -1, -period):
            use = (evidence[:, s] > 0) & ~filled[:, t]                 # (N, H, W)
            out[:, :, t] = torch.where(use.unsqueeze(1), values[:, :, s], out[:, :, t])
            filled[:, t] |= use
    return out
