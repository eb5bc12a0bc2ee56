"""U-MASK spatio-temporal relevance scores (eq. 14-15).

U-MASK paper (seed 000) section 4.3.2:
- eq. 14: p_{t,h,w} = beta_tau phi_t^(tau) + (1 - beta_tau) psi_{h,w}^(b),
          beta_tau = sigmoid(v^T e_tau + c_tau) from the task embedding e_tau;
- eq. 15: psi_{h,w} = ReLU(cos(Z_b * lambda_{b,tau}, E_pos(h, w))), the feature-weighted spatial
          affinity between the refined pattern vector and each location-category embedding.
phi^(tau) in (0, 1)^T is a learnable temporal profile (a sigmoid of free logits) whose initial
shape is a recency ramp of slope ``TaskConfig.recency``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from generative.config import UMaskConfig


class Relevance(nn.Module):
    """Maps (Z_b, lambda_{b,tau}, tau) to relevance scores p over the (T, H, W) grid."""

    def __init__(self, cfg: UMaskConfig, task_embed_dim: int = 8):
        super().__init__()
        self.cfg = cfg
        T = cfg.n_slots
        ramp = torch.arange(1, T + 1, dtype=torch.float32) / T - 0.5          # (T,)
        init = torch.stack([t.recency * ramp for t in cfg.tasks])            # (n_tasks, T)
        self.temporal_logit = nn.Parameter(init)                              # phi^(tau)
        self.location = nn.Parameter(torch.randn(cfg.height * cfg.width, cfg.latent_dim))  # E_pos
        self.task_embed = nn.Embedding(cfg.n_tasks, task_embed_dim)          # e_tau
        self.mix = nn.Linear(task_embed_dim, 1)                               # v, c_tau
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def temporal_profile(self, task: Tensor) -> Tensor:
        """phi^(tau): (B, T) in (0, 1)."""
        return torch.sigmoid(self.temporal_logit[task])

    def beta(self, task: Tensor) -> Tensor:
        """beta_tau = sigmoid(v^T e_tau + c_tau): (B,)."""
        return torch.sigmoid(self.mix(self.task_embed(task))).squeeze(-1)

    def spatial_affinity(self, z: Tensor, lam: Tensor) -> Tensor:
        """psi^(b): (B, H*W), eq. 15."""
        weighted = nn.functional.normalize(z * lam, dim=-1)                  # (B, d)
        loc = nn.functional.normalize(self.location, dim=-1)                  # (HW, d)
        return torch.relu(weighted @ loc.T)                                   # eq. 15, (B, HW)

    def forward(self, z: Tensor, lam: Tensor, task: Tensor) -> Tensor:
        cfg = self.cfg
        phi = self.temporal_profile(task)[:, :, None, None]                  # (B, T, 1, 1)
        psi = self.spatial_affinity(z, lam).view(-1, 1, cfg.height, cfg.width)  # (B, 1, H, W)
        beta = self.beta(task)[:, None, None, None]                           # (B, 1, 1, 1)
        return beta * phi + (1 - beta) * psi                                  # eq. 14, (B, T, H, W)
