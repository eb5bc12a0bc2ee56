"""Fig. 5 of seed paper 000 (RQ3) for a ``Fidelity`` result.

(a) difference heatmap, generated - real usage distribution (location category x app category,
    or x hour of day for place check-ins),
    cells with |diff| > ``threshold`` circled; (b) point-wise scatter of real vs generated shares
    with the identity line, the +-``threshold`` tolerance band in green, R^2 and Pearson r.
The caller's ``title`` must say where the data came from (e.g. "SIMULATED population").
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from uscope.synth.fidelity import Fidelity


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_difference_heatmap(result: Fidelity, path: str | Path, title: str,
                            threshold: float = 0.05) -> Path:
    """Fig. 5a: generated - real, diverging colours, |diff| > threshold circled."""
    diff = result.difference()
    values = diff.to_numpy()                                   # (L, A)
    limit = max(float(np.abs(values).max()), threshold, 1e-9)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.0 + 0.42 * values.shape[1]),
                                    1.6 + 0.42 * values.shape[0]))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    big_rows, big_cols = np.nonzero(np.abs(values) > threshold)
    ax.scatter(big_cols, big_rows, s=260, facecolors="none", edgecolors="black", linewidths=1.2)
    ax.set_xticks(range(values.shape[1]), diff.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(values.shape[0]), diff.index, fontsize=8)
    ax.set_xlabel("app category" if result.against == "app_category" else "hour of day")
    ax.set_ylabel("location category")
    ax.set_title(f"{title}\n(a) generated - original (circled: |diff| > {threshold:g}), "
                 f"MAE {result.mae:.4f}, RMSE {result.rmse:.4f}", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8, label="difference in usage share")
    return _save(fig, path)


def plot_scatter(result: Fidelity, path: str | Path, title: str,
                 threshold: float = 0.05) -> Path:
    """Fig. 5b: real vs generated share per cell, identity line and tolerance band."""
    real = result.real.to_numpy().ravel()
    generated = result.generated.to_numpy().ravel()
    top = max(float(real.max()), float(generated.max())) * 1.05 + 1e-9
    grid = np.linspace(0.0, top, 50)
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.fill_between(grid, grid - threshold, grid + threshold, color="tab:green", alpha=0.18,
                    label=f"+-{threshold:g} tolerance")
    ax.plot(grid, grid, color="black", linewidth=1.0, label="generated = original")
    inside = np.abs(generated - real) <= threshold
    ax.scatter(real, generated, s=14, color="tab:blue", alpha=0.8,
               label=f"cells ({inside.mean():.0%} within tolerance)")
    p_text = "p < 0.001" if result.p_value < 1e-3 else f"p = {result.p_value:.3g}"
    ax.text(0.04, 0.96, f"$R^2$ = {result.r2:.4f}\nr = {result.pearson_r:.4f} ({p_text})\n"
            f"{result.n_cells} cells", transform=ax.transAxes, va="top", fontsize=9)
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="original share", ylabel="generated share")
    ax.set_title(f"{title}\n(b) point-wise comparison", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)
