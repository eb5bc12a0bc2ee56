"""Public API: complete users' behaviour tensors with U-MASK + DiT (U-MASK paper eq. 3, 29).

    model = UMaskCompleter(DIT_PRESETS["umask-small"](channels=C, n_slots=T))
    ... train with generative.train.fit ...
    out = model.complete(values, observed_mask, h_u, task="short_term", n_samples=8)
    out.median, out.spread, out.samples           # data units (the tensor's [0, 1] scale)
    model.save("runs/umask"); UMaskCompleter.load("runs/umask")

Data in [0, 1] (``uscope.data.build_tensors`` output) are mapped to [-1, 1] for diffusion.
Saved as ``model.safetensors`` + ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from generative.config import CompletionConfig
from generative.dit.model import DiT
from generative.dit.sampler import sample
from generative.dit.schedule import SCHEDULERS, VPSchedule
from generative.tasks import task_masks
from generative.umask.model import MaskOutput, UMask


@dataclass
class Completion:
    samples: Tensor        # (S, N, C, T, H, W) completions in data units
    median: Tensor         # (N, C, T, H, W) median over samples
    spread: Tensor         # (N, C, T, H, W) standard deviation over samples
    evidence_mask: Tensor  # (N, T, H, W) the revealed coordinates (returned exactly)
    target_mask: Tensor    # (N, T, H, W) the coordinates of the task's target window


def _as_tensor(x, name: str, ndim: int) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float32)
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    return t


class UMaskCompleter(nn.Module):
    """U-MASK mask generator + shared DiT denoiser + VP schedule."""

    def __init__(self, cfg: CompletionConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.umask.user_dim <= 0:
            raise ValueError("umask.user_dim must be positive")
        self.umask = UMask(cfg.umask)
        self.dit = DiT(cfg.dit)
        self.schedule = VPSchedule(cfg.schedule)
        self.register_buffer("reference_h", torch.zeros(0, cfg.umask.user_dim))

    # --- data scale -------------------------------------------------------------------------
    @staticmethod
    def to_model_space(values: Tensor) -> Tensor:
        return values * 2.0 - 1.0

    @staticmethod
    def to_data_space(x: Tensor) -> Tensor:
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0)

    def evidence_offset(self, x0: Tensor, evidence_mask: Tensor, task_ids: Tensor,
                        weighted: Tensor | None = None) -> Tensor:
        """Per-user, per-channel level of the revealed evidence over time: (B, C, 1, H, W).

        Rows whose task has ``centre`` set diffuse X_0 minus this offset and add it back after
        sampling (instance normalisation, as RevIN does for forecasters): a DiT that outputs
        zeros then completes every hidden slot with the user's evidence level, and learns only
        the deviations from it. The level is per cell (h, w); a cell with no revealed slot takes
        the user's level over all revealed coordinates. Zero for other tasks and for users with
        no revealed coordinate.
        x0: (B, C, T, H, W); task_ids: (B,); evidence_mask: (B, T, H, W), the binary mask, or in
        training the straight-through one (same values), so the budget predictor of eq. 12-13
        gets the gradient of a level estimated from fewer slots. The level is the plain mean over
        the revealed slots, or with ``umask.centre_weighting == "relevance"`` the mean weighted by
        ``weighted`` = M' (eq. 17), so the relevance scores p (eq. 14) also decide the level.
        """
        flags = torch.tensor([t.centre for t in self.cfg.umask.tasks], device=x0.device)
        ev = evidence_mask.unsqueeze(1).to(x0.dtype)                       # (B, 1, T, H, W)
        w = ev
        if self.cfg.umask.centre_weighting == "relevance" and weighted is not None:
            w = weighted.unsqueeze(1).to(x0.dtype)
        elif self.cfg.umask.centre_weighting not in ("uniform", "relevance"):
            raise ValueError("umask.centre_weighting must be 'uniform' or 'relevance', got "
                             f"{self.cfg.umask.centre_weighting!r}")
        count = ev.sum(2, keepdim=True)                                    # (B, 1, 1, H, W)
        cell = (x0 * w).sum(2, keepdim=True) / w.sum(2, keepdim=True).clamp_min(1e-12)
        pooled = ((x0 * w).sum((2, 3, 4), keepdim=True)
                  / w.sum((2, 3, 4), keepdim=True).clamp_min(1e-12))       # (B, C, 1, 1, 1)
        mean = torch.where(count > 0, cell, pooled)
        use = flags[task_ids].view(-1, 1, 1, 1, 1) & (ev.sum((2, 3, 4), keepdim=True) > 0)
        return torch.where(use, mean, torch.zeros_like(mean))

    def set_reference(self, h: Tensor) -> None:
        """Neighbour users for the batch similarity (eq. 11) at inference time."""
        self.reference_h = torch.as_tensor(h, dtype=torch.float32).detach().clone()

    def task_ids(self, task: str | int | Tensor, n: int) -> Tensor:
        if isinstance(task, str):
            task = self.cfg.umask.task_index(task)
        ids = torch.as_tensor(task, dtype=torch.long)
        return ids.expand(n).clone() if ids.dim() == 0 else ids

    def masks(self, h: Tensor, task: Tensor, candidates: Tensor, *, stochastic: bool,
              generator: torch.Generator | None = None) -> MaskOutput:
        ref = self.reference_h if (len(self.reference_h) and not self.training) else None
        return self.umask(h, task, candidates, generator=generator, stochastic=stochastic,
                          policy=self.cfg.mask_policy, reference=ref)

    def _check(self, values: Tensor, observed: Tensor, h: Tensor) -> None:
        c = self.cfg.dit
        expect = (c.channels, c.n_slots, c.height, c.width)
        if tuple(values.shape[1:]) != expect:
            raise ValueError(f"values must be (N, C, T, H, W) = (N, *{expect}), "
                             f"got {tuple(values.shape)}")
        if tuple(observed.shape) != (values.shape[0], *expect[1:]):
            raise ValueError(f"observed_mask must be (N, T, H, W) matching values, "
                             f"got {tuple(observed.shape)}")
        if tuple(h.shape) != (values.shape[0], self.cfg.umask.user_dim):
            raise ValueError(f"h_u must be (N, {self.cfg.umask.user_dim}), got {tuple(h.shape)}")

    # --- completion -------------------------------------------------------------------------
    @torch.no_grad()
    def complete(self, values, observed_mask, h_u, task: str | int = "short_term", *,
                 n_samples: int = 8, sampler: str = "ddim", steps: int | None = 20,
                 seed: int = 0, batch_size: int = 256, evidence_mask=None,
                 stochastic_mask: bool = False) -> Completion:
        """Complete each user's tensor for ``task``.

        values: (N, C, T, H, W) in [0, 1]; observed_mask: (N, T, H, W); h_u: (N, user_dim).
        ``evidence_mask`` (N, T, H, W) overrides U-MASK with a given binary evidence mask.
        ``sampler``: "ddim" (``steps`` steps) or "ddpm" (``steps`` None = all training steps).
        """
        values = _as_tensor(values, "values", 5)
        observed = _as_tensor(observed_mask, "observed_mask", 4)
        h = _as_tensor(h_u, "h_u", 2)
        self._check(values, observed, h)
        if sampler not in SCHEDULERS:
            raise ValueError(f"sampler must be one of {sorted(SCHEDULERS)}, got {sampler!r}")
        was_training = self.training
        self.eval()
        gen = torch.Generator().manual_seed(seed)
        scheduler = SCHEDULERS[sampler](self.cfg.schedule)
        device = next(self.parameters()).device
        outs, ev_all, tg_all = [], [], []
        for start in range(0, values.shape[0], batch_size):
            v = values[start:start + batch_size].to(device)
            o = observed[start:start + batch_size].to(device)
            hb = h[start:start + batch_size].to(device)
            tid = self.task_ids(task, v.shape[0]).to(device)
            tm = task_masks(self.cfg.umask.tasks, tid, o)
            m = self.masks(hb, tid, tm.candidates, stochastic=stochastic_mask, generator=gen)
            hard, weighted = m.hard, m.weighted
            if evidence_mask is not None:
                hard = _as_tensor(evidence_mask, "evidence_mask", 4)[start:start + batch_size]
                hard = hard.to(device)
                weighted = hard
            x0 = self.to_model_space(v)
            offset = self.evidence_offset(x0, hard, tid, weighted)           # (B, C, 1, H, W)
            x0 = x0 - offset
            rep = lambda t: t.repeat(n_samples, *([1] * (t.dim() - 1)))
            known, mask_h, mask_w = rep(x0), rep(hard), rep(weighted)
            evidence = mask_w.unsqueeze(1) * known                           # eq. 28 with M'
            ctx, tids = rep(m.context), rep(tid)

            def denoise(x_t: Tensor, t: Tensor, evidence=evidence, mask_w=mask_w, ctx=ctx,
                        tids=tids) -> Tensor:
                return self.dit(x_t, t, evidence, mask_w, ctx, tids)

            x = sample(denoise, scheduler.to(device), known, mask_h, num_steps=steps,
                       generator=gen, shift=rep(offset))                     # eq. 35 inside
            x = x.view(n_samples, *x0.shape) + offset[None]
            # Evidence returns exactly, in data units as given (no round trip through [-1, 1]).
            x = torch.where(hard.bool()[None, :, None], v[None], self.to_data_space(x))
            outs.append(x.cpu())
            ev_all.append(hard.cpu())
            tg_all.append(tm.target.cpu())
        samples = torch.cat(outs, dim=1)
        if was_training:
            self.train()
        return Completion(samples=samples, median=samples.median(dim=0).values,
                          spread=samples.std(dim=0, unbiased=False),
                          evidence_mask=torch.cat(ev_all), target_mask=torch.cat(tg_all))

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(tensors, str(d / "model.safetensors"))
        (d / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2, ensure_ascii=False),
                                       encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> UMaskCompleter:
        d = Path(directory)
        for name in ("config.json", "model.safetensors"):
            if not (d / name).is_file():
                raise FileNotFoundError(f"{d / name} not found: not a saved UMaskCompleter")
        cfg = CompletionConfig.from_dict(json.loads((d / "config.json").read_text("utf-8")))
        model = cls(cfg)
        tensors = load_file(str(d / "model.safetensors"), device=device)
        model.reference_h = torch.zeros_like(tensors["reference_h"])
        model.load_state_dict(tensors)
        return model.to(device).eval()
