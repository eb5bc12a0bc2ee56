"""Fig. 8 analogue (U-MASK paper): the masks U-MASK learned per task (temporal, spatial, joint, values).

Rows: short-term, long-term, cold start. Columns: share of users whose evidence includes each
time slot; share per spatial cell; the joint (time x cell) share; the distribution of the
importance weights M' = I * p (eq. 17) on the revealed coordinates.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from generative.completion import UMaskCompleter
from generative.tasks import task_masks


@torch.no_grad()
def plot_masks(model: UMaskCompleter, values: torch.Tensor, observed: torch.Tensor,
               h: torch.Tensor, path: Path, title: str = "") -> Path:
    model.eval()
    tasks = model.cfg.umask.tasks
    fig, axes = plt.subplots(len(tasks), 4, figsize=(15, 3.2 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        ids = torch.full((values.shape[0],), row, dtype=torch.long)
        tm = task_masks(tasks, ids, observed)
        m = model.masks(h, ids, tm.candidates, stochastic=False)
        hard = m.hard                                                     # (N, T, H, W)
        T = hard.shape[1]
        joint = hard.mean(0).flatten(1)                                   # (T, HW)
        ax = axes[row]
        ax[0].bar(range(T), hard.mean((0, 2, 3)).numpy(), color="tab:blue")
        ax[0].axvspan(T - task.horizon - 0.5, T - 0.5, color="tab:red", alpha=0.15,
                      label="target window")
        ax[0].set(title=f"{task.name}: temporal", xlabel="time slot", ylabel="share revealed",
                  ylim=(0, 1))
        ax[0].legend(loc="upper left", fontsize=7)
        ax[1].bar(range(joint.shape[1]), hard.mean((0, 1)).flatten().numpy(), color="tab:green")
        ax[1].set(title="spatial", xlabel="cell (location category)", ylim=(0, 1))
        im = ax[2].imshow(joint.T.numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1,
                          origin="lower")
        ax[2].set(title="joint (time x cell)", xlabel="time slot", ylabel="cell")
        fig.colorbar(im, ax=ax[2])
        w = m.weighted[hard.bool()]
        ax[3].hist(w.numpy(), bins=30, color="tab:purple")
        ax[3].set(title=f"M' values (mean budget {float(m.budget.float().mean()):.1f})",
                  xlabel="importance weight")
    fig.suptitle(f"Learned U-MASK masks per task: {title}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
