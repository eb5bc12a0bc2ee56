"""Variance-preserving diffusion schedule with DDPM and DDIM steps (U-MASK paper eq. 30-31).

- eq. 30: q(X_t | X_{t-1}) = N(sqrt(alpha_t) X_{t-1}, (1 - alpha_t) I), alpha_t = 1 - beta_t
  (the paper prints sqrt(alpha_bar_t) here; the closed form eq. 31 requires sqrt(alpha_t));
- eq. 31: X_t = sqrt(alpha_bar_t) X_0 + sqrt(1 - alpha_bar_t) eps.
Vocabulary follows diffusers: ``set_timesteps``, ``step(model_output, t, sample)`` returning
``prev_sample`` and ``pred_original_sample``, ``add_noise(x0, noise, t)``. Timesteps are 0-based
(t = 0 is the first noising step); schedule tensors are registered buffers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from generative.config import ScheduleConfig


@dataclass
class StepOutput:
    prev_sample: Tensor
    pred_original_sample: Tensor


def make_betas(cfg: ScheduleConfig) -> Tensor:
    n = cfg.train_steps
    if cfg.beta_schedule == "linear":
        scale = 1000.0 / n          # keep the total noise of the 1000-step schedule
        return torch.linspace(cfg.beta_start * scale, cfg.beta_end * scale, n, dtype=torch.float64)
    if cfg.beta_schedule == "cosine":  # Nichol & Dhariwal 2021
        s = 0.008
        steps = torch.arange(n + 1, dtype=torch.float64) / n
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=0.999)
    raise ValueError(f"beta_schedule must be 'linear' or 'cosine', got {cfg.beta_schedule!r}")


class VPSchedule(nn.Module):
    """The forward process and the conversions shared by the samplers."""

    def __init__(self, cfg: ScheduleConfig):
        super().__init__()
        self.cfg = cfg
        betas = make_betas(cfg)
        alphas = 1.0 - betas                                               # eq. 30
        self.register_buffer("betas", betas.float())
        self.register_buffer("alphas", alphas.float())
        self.register_buffer("alphas_cumprod", torch.cumprod(alphas, 0).float())  # alpha_bar
        self.timesteps = torch.arange(cfg.train_steps - 1, -1, -1)

    @property
    def num_train_timesteps(self) -> int:
        return self.cfg.train_steps

    def _bar(self, t: Tensor, like: Tensor) -> Tensor:
        a = self.alphas_cumprod.to(like.device)[t.long()]
        return a.reshape(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """X_t = sqrt(alpha_bar_t) X_0 + sqrt(1 - alpha_bar_t) eps (eq. 31); t: (B,)."""
        a = self._bar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def to_x0_eps(self, model_output: Tensor, t: Tensor, sample: Tensor,
                  shift: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(predicted X_0, predicted eps) from the network output and X_t.

        ``clip_sample`` keeps X_0 inside the data range [-clip, clip]. When the diffused tensor
        is X_0 minus an offset (a centred task), ``shift`` is that offset (broadcastable to
        X_t) and the clip applies to X_0 + shift, i.e. in data space.
        """
        a = self._bar(t, sample)
        if self.cfg.prediction_type == "sample":
            x0 = model_output
        elif self.cfg.prediction_type == "epsilon":
            x0 = (sample - (1 - a).sqrt() * model_output) / a.sqrt()
        else:
            raise ValueError(f"unknown prediction_type {self.cfg.prediction_type!r}")
        if self.cfg.clip_sample is not None:
            clip, shift = self.cfg.clip_sample, 0.0 if shift is None else shift
            x0 = torch.clamp(x0, -clip - shift, clip - shift)
        eps = (sample - a.sqrt() * x0) / (1 - a).sqrt()
        return x0, eps

    def training_target(self, x0: Tensor, noise: Tensor) -> Tensor:
        """What the network regresses: X_0 (eq. 32) or eps."""
        return x0 if self.cfg.prediction_type == "sample" else noise

    def set_timesteps(self, num_inference_steps: int | None = None) -> Tensor:
        """Evenly spaced descending timesteps from T_d - 1 to 0 (one step: T_d - 1 only); None = all."""
        n = self.cfg.train_steps if num_inference_steps is None else num_inference_steps
        if not 1 <= n <= self.cfg.train_steps:
            raise ValueError(f"num_inference_steps must be in [1, {self.cfg.train_steps}], got {n}")
        # Descending from the last training step (pure noise) to t = 0.
        ts = torch.linspace(self.cfg.train_steps - 1, 0, n).round().long()
        self.timesteps = ts.unique_consecutive()
        return self.timesteps

    def previous_timestep(self, t: int) -> int:
        later = self.timesteps[self.timesteps < t]
        return int(later[0]) if len(later) else -1

    def _prev_bar(self, prev_t: int, like: Tensor) -> Tensor:
        if prev_t < 0:
            return torch.ones((), device=like.device)
        return self.alphas_cumprod.to(like.device)[prev_t]


class DDPMScheduler(VPSchedule):
    """Ancestral sampling from the posterior q(X_{t'} | X_t, X_0) (Ho et al. 2020)."""

    def step(self, model_output: Tensor, t: int, sample: Tensor,
             generator: torch.Generator | None = None, shift: Tensor | None = None) -> StepOutput:
        tt = torch.full((sample.shape[0],), t, dtype=torch.long)
        x0, _ = self.to_x0_eps(model_output, tt, sample, shift)
        prev_t = self.previous_timestep(t)
        a_t = self.alphas_cumprod.to(sample.device)[t]
        a_prev = self._prev_bar(prev_t, sample)
        beta_t = 1 - a_t / a_prev                                           # effective beta
        coef_x0 = a_prev.sqrt() * beta_t / (1 - a_t)
        coef_xt = (a_t / a_prev).sqrt() * (1 - a_prev) / (1 - a_t)
        mean = coef_x0 * x0 + coef_xt * sample
        if prev_t < 0:
            return StepOutput(prev_sample=mean, pred_original_sample=x0)
        var = beta_t * (1 - a_prev) / (1 - a_t)
        noise = torch.randn(sample.shape, generator=generator).to(sample.device)
        return StepOutput(prev_sample=mean + var.sqrt() * noise, pred_original_sample=x0)


class DDIMScheduler(VPSchedule):
    """Deterministic (eta = 0) or stochastic DDIM steps (Song et al. 2021); few steps suffice."""

    def __init__(self, cfg: ScheduleConfig, eta: float = 0.0):
        super().__init__(cfg)
        self.eta = eta

    def step(self, model_output: Tensor, t: int, sample: Tensor,
             generator: torch.Generator | None = None, shift: Tensor | None = None) -> StepOutput:
        tt = torch.full((sample.shape[0],), t, dtype=torch.long)
        x0, eps = self.to_x0_eps(model_output, tt, sample, shift)
        prev_t = self.previous_timestep(t)
        a_t = self.alphas_cumprod.to(sample.device)[t]
        a_prev = self._prev_bar(prev_t, sample)
        sigma = self.eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        direction = (1 - a_prev - sigma ** 2).clamp_min(0).sqrt() * eps
        prev = a_prev.sqrt() * x0 + direction
        if self.eta > 0 and prev_t >= 0:
            prev = prev + sigma * torch.randn(sample.shape, generator=generator).to(sample.device)
        return StepOutput(prev_sample=prev, pred_original_sample=x0)


SCHEDULERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler}
