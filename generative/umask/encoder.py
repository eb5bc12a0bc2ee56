"""U-MASK user representation: hierarchical encoder, task projection, Fisher sensitivity, refinement.

U-MASK paper (seed 000) section 4.1-4.2:
- eq. 5: {F_short, F_long, F_pat} = T_hier(h_b), a small Transformer;
- eq. 6: F_{b,tau} = P_tau [F_short; F_long; F_pat];
- eq. 7: diag(I_{b,tau}) ~ G_tau(F_{b,tau}) * G_tau(F_{b,tau}) + eps, lambda = sqrt(diag I);
- eq. 8: Z_{k+1} = Z_k + eta * Delta_tau(Z_k), K steps from Z_0 = F_pat.
Per-task parameters are stacked tensors indexed by the task id of each sample, so one batch may
mix tasks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from generative.config import UMaskConfig


class TaskLinear(nn.Module):
    """A separate affine map per task: y_b = x_b W_{tau_b} + c_{tau_b}."""

    def __init__(self, n_tasks: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_tasks, d_in, d_out) / math.sqrt(d_in))
        self.bias = nn.Parameter(torch.zeros(n_tasks, d_out))

    def forward(self, x: Tensor, task: Tensor) -> Tensor:
        # x: (B, d_in), task: (B,) long
        return torch.einsum("bi,bio->bo", x, self.weight[task]) + self.bias[task]  # (B, d_out)


class TaskMLP(nn.Module):
    """Two TaskLinear layers with a GELU: a small per-task network."""

    def __init__(self, n_tasks: int, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.inner = TaskLinear(n_tasks, d_in, d_hidden)
        self.outer = TaskLinear(n_tasks, d_hidden, d_out)

    def forward(self, x: Tensor, task: Tensor) -> Tensor:
        return self.outer(nn.functional.gelu(self.inner(x, task)), task)


class HierarchicalEncoder(nn.Module):
    """T_hier (eq. 5): h_b -> (F_short, F_long, F_pat), each in R^d.

    The projected user embedding is one token; three learned query tokens attend to it and to
    each other through a Transformer encoder; their outputs are the three latent factors.
    """

    def __init__(self, cfg: UMaskConfig):
        super().__init__()
        d = cfg.latent_dim
        self.user_proj = nn.Sequential(nn.LayerNorm(cfg.user_dim), nn.Linear(cfg.user_dim, d))
        self.queries = nn.Parameter(torch.randn(3, d) * 0.02)  # short, long, pattern
        layer = nn.TransformerEncoderLayer(d, cfg.encoder_heads, dim_feedforward=2 * d,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.encoder_layers,
                                                 enable_nested_tensor=False)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        user = self.user_proj(h).unsqueeze(1)                           # (B, 1, d)
        q = self.queries.unsqueeze(0).expand(h.shape[0], -1, -1)        # (B, 3, d)
        out = self.transformer(torch.cat([user, q + user], dim=1))      # (B, 4, d)
        return out[:, 1], out[:, 2], out[:, 3]                          # eq. 5


class TaskAdaptiveRepresentation(nn.Module):
    """Eq. 6-8: task projection, Fisher-diagonal sensitivity and task-specific refinement."""

    def __init__(self, cfg: UMaskConfig):
        super().__init__()
        self.cfg = cfg
        d, dt, nt = cfg.latent_dim, cfg.task_dim, cfg.n_tasks
        self.projection = TaskLinear(nt, 3 * d, dt)           # P_tau (eq. 6)
        self.sensitivity = TaskMLP(nt, dt, dt, d)             # G_tau (eq. 7)
        self.refine = TaskMLP(nt, d, d, d)                    # Delta_tau (eq. 8)

    def task_context(self, f_short: Tensor, f_long: Tensor, f_pat: Tensor, task: Tensor) -> Tensor:
        """F_{b,tau} = P_tau [F_short; F_long; F_pat] (eq. 6)."""
        return self.projection(torch.cat([f_short, f_long, f_pat], dim=-1), task)  # (B, d_tau)

    def importance(self, f_task: Tensor, task: Tensor) -> Tensor:
        """lambda_{b,tau} = sqrt(G_tau(F) * G_tau(F) + eps) (eq. 7)."""
        g = self.sensitivity(f_task, task)                    # (B, d)
        fisher_diag = g * g + self.cfg.fisher_eps             # eq. 7
        return fisher_diag.sqrt()

    def refined_pattern(self, f_pat: Tensor, task: Tensor) -> Tensor:
        """Z_b = Z_K with Z_{k+1} = Z_k + eta Delta_tau(Z_k), Z_0 = F_pat (eq. 8)."""
        z = f_pat
        for _ in range(self.cfg.refine_steps):
            z = z + self.cfg.refine_eta * self.refine(z, task)  # eq. 8
        return z
