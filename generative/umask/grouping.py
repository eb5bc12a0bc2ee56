"""U-MASK observation ratio: soft behaviour groups, batch similarity, user scaling (eq. 9-13).

U-MASK paper (seed 000) section 4.3.1:
- eq. 9:  Z_B stacks the refined pattern vectors of the batch;
- eq. 10: A = softmax(Phi(Z_B) / T_tmp), soft assignment to K groups;
- eq. 11: S = alpha A A^T + (1 - alpha) U U^T, U the l2-normalised Z rows, alpha learnable in (0, 1);
          s_b = max_{j != b} S_bj;
- eq. 12: gamma_b = sigmoid(w^T e_b + c), e_b = (s_b, log(1 + ||Z_b||), H(A_b));
- eq. 13: rho~_{b,tau} = rho_tau * gamma_b with rho_tau = max_ratio_tau * sigmoid(logit_tau).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from generative.config import UMaskConfig


@dataclass
class RatioOutput:
    ratio: Tensor        # (B,) rho~_{b,tau} (eq. 13)
    gamma: Tensor        # (B,) gamma_b (eq. 12)
    assignment: Tensor   # (B, K) A (eq. 10)
    similarity: Tensor   # (B, B + R) S against the batch and any reference rows (eq. 11)


def _inverse_sigmoid(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


class ObservationRatio(nn.Module):
    """Predicts the evidence ratio rho~_{b,tau} of every user in a batch (eq. 9-13)."""

    def __init__(self, cfg: UMaskConfig):
        super().__init__()
        self.cfg = cfg
        self.assign = nn.Linear(cfg.latent_dim, cfg.n_groups)            # Phi (eq. 10)
        self.alpha_logit = nn.Parameter(torch.zeros(()))                   # alpha (eq. 11)
        # eq. 12: w, c; c starts high so that gamma ~ 0.9 and rho~ starts near rho_tau.
        self.scale = nn.Linear(3, 1)
        nn.init.normal_(self.scale.weight, std=0.1)
        nn.init.constant_(self.scale.bias, 2.2)
        # eq. 13: rho_tau in (0, max_ratio_tau), initialised at init_ratio / 0.9.
        self.register_buffer("max_ratio", torch.tensor([t.max_ratio for t in cfg.tasks]))
        init = [_inverse_sigmoid(min(t.init_ratio / 0.9, t.max_ratio) / t.max_ratio)
                for t in cfg.tasks]
        self.base_logit = nn.Parameter(torch.tensor(init))

    def assignment(self, z: Tensor) -> Tensor:
        """A = softmax(Phi(Z) / T_tmp) (eq. 10)."""
        return torch.softmax(self.assign(z) / self.cfg.group_temperature, dim=-1)  # (B, K)

    def base_ratio(self) -> Tensor:
        """rho_tau for every task, each in (0, max_ratio_tau) (eq. 13)."""
        return self.max_ratio * torch.sigmoid(self.base_logit)  # (n_tasks,)

    def forward(self, z: Tensor, task: Tensor, reference: Tensor | None = None) -> RatioOutput:
        """z: (B, d) refined pattern vectors Z_B (eq. 9); task: (B,).

        ``reference`` (R, d) are extra neighbour rows (e.g. training users) so that a user's
        budget does not depend on which other users share its batch at inference time; when
        given, s_b is the max similarity to the reference rows only.
        """
        a = self.assignment(z)                                          # (B, K)
        u = nn.functional.normalize(z, dim=-1)                          # (B, d)
        alpha = torch.sigmoid(self.alpha_logit)
        if reference is None:
            a_n, u_n = a, u
        else:
            a_n, u_n = self.assignment(reference), nn.functional.normalize(reference, dim=-1)
        sim = alpha * a @ a_n.T + (1 - alpha) * u @ u_n.T               # eq. 11, (B, B or R)
        if reference is None:
            eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
            masked = sim.masked_fill(eye, float("-inf"))
            # A user alone in its batch has no neighbour: s_b = 0.
            s = masked.max(dim=-1).values if z.shape[0] > 1 else torch.zeros_like(sim[:, 0])
        else:
            s = sim.max(dim=-1).values                                  # (B,)
        entropy = -(a * a.clamp_min(1e-12).log()).sum(-1)               # H(A_b)
        # ||Z_b|| enters as log(1 + ||Z_b||): the raw norm is unbounded (eq. 8 adds residuals) and
        # once drove sigmoid(w^T e_b + c) to 0, i.e. a zero evidence budget for every user.
        e = torch.stack([s, torch.log1p(z.norm(dim=-1)), entropy], dim=-1)  # e_b (B, 3)
        gamma = torch.sigmoid(self.scale(e)).squeeze(-1)                # eq. 12, (B,)
        ratio = self.base_ratio()[task] * gamma                         # eq. 13
        return RatioOutput(ratio=ratio, gamma=gamma, assignment=a, similarity=sim)
