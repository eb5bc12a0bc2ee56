"""Masked diffusion reconstruction loss (U-MASK paper eq. 19 / eq. 32).

L = E_{b,tau,t} || X_{b,0} - eps_theta(M' * X_{b,t}, F_{b,tau}, t, tau) ||^2, evaluated on the
target mask only (coordinates to be completed) and divided by its count (CSDI convention).
"""

from __future__ import annotations

from torch import Tensor


def masked_diffusion_loss(prediction: Tensor, target: Tensor, target_mask: Tensor) -> Tensor:
    """prediction, target: (B, C, T, H, W); target_mask: (B, T, H, W), broadcast over C.

    Returns the mean squared error over the target coordinates (eq. 19/32); 0 when empty.
    """
    m = target_mask.unsqueeze(1).to(prediction.dtype)                 # (B, 1, T, H, W)
    sq = (prediction - target) ** 2 * m                               # eq. 32 on target only
    count = m.sum() * prediction.shape[1]
    return sq.sum() / count.clamp_min(1.0)
