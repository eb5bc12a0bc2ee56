"""Evidence-clamped reverse diffusion (U-MASK paper section 6.4, eq. 35).

Sampling starts from X_{T_d} ~ N(0, I); after every reverse update (DDPM or DDIM, see
schedule.py) the observed entries are put back:
    X_{t-1} = (1 - M) * X^_{t-1} + M * X_u                                     (eq. 35)
so the returned tensor equals the evidence exactly wherever the hard mask M is 1.
The denoiser is any callable ``denoise(x_t, t) -> model_output``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from generative.dit.schedule import VPSchedule


def clamp_evidence(x: Tensor, known: Tensor, mask: Tensor) -> Tensor:
    """Eq. 35. x, known: (B, C, T, H, W); mask: (B, T, H, W) binary, broadcast over C."""
    m = mask.unsqueeze(1).to(x.dtype)
    return (1 - m) * x + m * known                                   # eq. 35


@torch.no_grad()
def sample(denoise: Callable[[Tensor, Tensor], Tensor], scheduler: VPSchedule, known: Tensor,
           mask: Tensor, *, num_steps: int | None = None,
           generator: torch.Generator | None = None, shift: Tensor | None = None) -> Tensor:
    """Draw one completion per row of ``known`` (B, C, T, H, W) with evidence ``mask`` (B, T, H, W).

    ``num_steps`` None runs every training step (full DDPM); DDIM uses e.g. 10-20. ``shift``:
    the offset subtracted from the data before diffusion (centred tasks), so the X_0 clip
    applies in data space (``VPSchedule.to_x0_eps``).
    """
    x = torch.randn(known.shape, generator=generator).to(known.device)  # X_{T_d} ~ N(0, I)
    x = clamp_evidence(x, known, mask)
    scheduler.set_timesteps(num_steps)
    for t in scheduler.timesteps.tolist():
        tt = torch.full((known.shape[0],), t, dtype=torch.long, device=known.device)
        out = scheduler.step(denoise(x, tt), t, x, generator=generator, shift=shift)
        x = clamp_evidence(out.prev_sample, known, mask)             # eq. 35 at every step
    return x
