"""The learned anchors of the U-MASK paper's Tables 1-6, from PyPOTS, on U-MASK's own tensors.

SAITS, CSDI and PatchTST (``pypots.imputation``) see a behaviour tensor (N, C, T, H, W) as N
series of T steps with C * H * W features, NaN wherever U-MASK would not reveal evidence. Each is
fitted once per seed on the training users' tensors (PyPOTS's own masking: SAITS and PatchTST
hide random observed values, CSDI random ratios of them), early-stopped on held-out training
users whose long-term target window is hidden, and then completes every task from the same
evidence the statistical baselines see (``generative.evaluate.baseline_evidence``). None of the
three takes a per-user static input, so none can be given h_u.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import Tensor

ANCHORS = ("SAITS", "PatchTST", "CSDI")
BATCH_SIZE = 32   # the reported run's, for every anchor


def anchor_inputs(tasks, observed: Tensor, split: tuple[Tensor, Tensor], seed: int):
    """What the anchors of one seed see: the training users' long-term history (the evidence
    of their early-stopping users), and per task the test users' (target, evidence), the
    evidence the statistical baselines see (``baseline_evidence``)."""
    from generative.evaluate import baseline_evidence
    from generative.tasks import task_masks

    test, train = split
    long_id = torch.full((len(train),), [t.name for t in tasks].index("long_term"))
    val_keep = task_masks(tasks, long_id, observed[train]).candidates
    evidence = {}
    for tid, task in enumerate(tasks):
        tm = task_masks(tasks, torch.full((len(test),), tid), observed[test])
        evidence[task.name] = (tm.target, baseline_evidence(tm, task, seed))
    return val_keep, evidence


def device_name(device: str) -> str:
    """``device`` in words: the GPU's name, or how many cores a CPU has."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{os.cpu_count()}-core CPU" if device == "cpu" else device


def gpu_peak(device: str) -> dict:
    """{"peak_gpu_mb": the most GPU memory torch held since its last reset} on a CUDA
    ``device``; {} elsewhere."""
    if not device.startswith("cuda"):
        return {}
    return {"peak_gpu_mb": torch.cuda.max_memory_allocated(torch.device(device)) / 2**20}


def to_series(values: Tensor, keep: Tensor | None = None) -> np.ndarray:
    """(N, C, T, H, W) -> (N, T, C*H*W) float32, NaN where ``keep`` (N, T, H, W) is 0."""
    n, c, t, h, w = values.shape
    series = values.permute(0, 2, 1, 3, 4).reshape(n, t, c * h * w).numpy().astype(np.float32)
    if keep is not None:
        hide = (keep == 0).unsqueeze(2).expand(n, t, c, h, w).reshape(n, t, c * h * w)
        series = np.where(hide.numpy(), np.nan, series).astype(np.float32)
    return series


def from_series(series: np.ndarray, shape: tuple[int, ...]) -> Tensor:
    """(..., T, C*H*W) -> (..., C, T, H, W) clipped to the data range [0, 1]."""
    c, t, h, w = shape
    x = torch.from_numpy(np.asarray(series, dtype=np.float32)).clamp(0.0, 1.0)
    lead = x.shape[:-2]
    x = x.reshape(*lead, t, c, h, w)
    return x.movedim(-4, -3)


def build(name: str, n_steps: int, n_features: int, epochs: int, patience: int | None,
          device: str = "cpu", verbose: bool = False, batch_size: int = BATCH_SIZE):
    """An anchor at the CPU budget of the benchmark (sizes in its table note); ``verbose``:
    PyPOTS logs every epoch."""
    from pypots.imputation import CSDI, SAITS, PatchTST

    common = {"batch_size": batch_size, "epochs": epochs, "device": device, "saving_path": None,
              "verbose": verbose, "patience": None if patience is None else min(patience, epochs)}
    if name == "SAITS":
        return SAITS(n_steps, n_features, n_layers=2, d_model=64, n_heads=4, d_k=16, d_v=16,
                     d_ffn=128, dropout=0.1, **common)
    if name == "PatchTST":
        patch = 8 if n_steps % 8 == 0 else 1
        return PatchTST(n_steps, n_features, patch_size=patch, patch_stride=patch, n_layers=2,
                        d_model=64, n_heads=4, d_k=16, d_v=16, d_ffn=128, dropout=0.1,
                        attn_dropout=0.0, **common)
    if name == "CSDI":
        return CSDI(n_steps, n_features, n_layers=2, n_heads=4, n_channels=32,
                    d_time_embedding=64, d_feature_embedding=8, d_diffusion_embedding=64,
                    n_diffusion_steps=50, **common)
    raise ValueError(f"unknown anchor {name!r}; known: {ANCHORS}")


def fit_anchor(name: str, values: Tensor, observed: Tensor, val_keep: Tensor, seed: int,
               epochs: int, patience: int = 5, val_fraction: float = 0.1, device: str = "cpu",
               verbose: bool = False, batch_size: int = BATCH_SIZE):
    """Fit one anchor on training users on ``device``; ``val_keep`` (N, T, H, W): evidence of
    the held-out share (the long-term history). The held-out users are U-MASK's
    (``split_validation``). Returns (model, seconds)."""
    from generative.train import split_validation

    torch.manual_seed(seed)
    np.random.seed(seed)
    _, c, t, h, w = values.shape
    model = build(name, t, c * h * w, epochs, patience if val_fraction > 0 else None, device,
                  verbose, batch_size)
    t0 = time.perf_counter()
    if val_fraction > 0:
        fit, val = split_validation(values.shape[0], val_fraction, seed)
        model.fit({"X": to_series(values[fit], observed[fit])},
                  {"X": to_series(values[val], val_keep[val]),
                   "X_ori": to_series(values[val], observed[val])})
    else:                                    # every epoch, no early stopping
        model.fit({"X": to_series(values, observed)})
    return model, time.perf_counter() - t0


def anchor_samples(name: str, model, values: Tensor, evidence: Tensor, n_samples: int) -> Tensor:
    """(S, N, C, T, H, W) completions from ``evidence``; S = 1 for the point anchors."""
    x = {"X": to_series(values, evidence)}
    if name == "CSDI":
        out = model.predict(x, n_sampling_times=n_samples)["imputation"]   # (N, S, T, F)
        return from_series(out, values.shape[1:]).movedim(1, 0)
    return from_series(model.predict(x)["imputation"], values.shape[1:]).unsqueeze(0)
