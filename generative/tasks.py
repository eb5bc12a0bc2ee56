"""The three inference regimes as named masks over one behaviour tensor (U-MASK paper section 3).

Every regime tau splits the time axis into a history window [0, T - horizon) and a target window
[T - horizon, T):
- ``candidates``: coordinates U-MASK may reveal as evidence = history window AND observed data;
- ``target``: coordinates to complete and score = target window AND scored data.
Short-term prediction hides a few recent slots, long-term forecasting a long horizon; cold start
hides the same long horizon but caps the evidence budget at a few coordinates (TaskConfig.max_ratio)
and mixes the sampling distribution with the uniform one (eq. 18), so generation is guided mainly
by h_u and tau.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from generative.config import TaskConfig


@dataclass
class TaskMasks:
    candidates: Tensor   # (B, T, H, W) 1 where evidence may be revealed
    target: Tensor       # (B, T, H, W) 1 where the completion is trained / scored


def target_window(task: TaskConfig, n_slots: int) -> Tensor:
    """(T,) bool, True on the hidden slots of ``task``."""
    if not 0 < task.horizon < n_slots:
        raise ValueError(f"task {task.name!r}: horizon {task.horizon} must be in (0, {n_slots})")
    w = torch.zeros(n_slots, dtype=torch.bool)
    w[n_slots - task.horizon:] = True
    return w


def task_masks(tasks: list[TaskConfig], task_ids: Tensor, observed_mask: Tensor,
               scored_mask: Tensor | None = None) -> TaskMasks:
    """Candidate and target masks for a batch whose rows may use different tasks.

    observed_mask: (B, T, H, W) where the data hold evidence; scored_mask: where ground truth is
    scored (default: observed_mask).
    """
    T = observed_mask.shape[1]
    scored = observed_mask if scored_mask is None else scored_mask
    windows = torch.stack([target_window(t, T) for t in tasks])      # (n_tasks, T)
    w = windows[task_ids.cpu()].to(observed_mask.device)[:, :, None, None].to(observed_mask.dtype)
    return TaskMasks(candidates=observed_mask * (1 - w), target=scored * w)
