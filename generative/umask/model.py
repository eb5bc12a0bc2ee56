"""U-MASK: the user- and task-specific mask generator (section 4, eq. 5-18).

Forward pass (Alg. 1, lines 4-16): h_u -> T_hier (eq. 5) -> F_{b,tau} (eq. 6) and lambda (eq. 7)
-> refined pattern Z_b (eq. 8) -> observation ratio rho~ (eq. 9-13) -> relevance p (eq. 14-15)
-> cold-start mixing (eq. 18) -> Gumbel top-k mask I and weighted mask M' (eq. 16-17).
With ``policy="fixed"`` the same encoder supplies the context F_{b,tau} but the evidence is a
uniform random draw of a fixed ratio: the non-adaptive control of RQ2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from generative.config import UMaskConfig
from generative.umask.encoder import HierarchicalEncoder, TaskAdaptiveRepresentation
from generative.umask.grouping import ObservationRatio
from generative.umask.relevance import Relevance
from generative.umask.topk import cold_start_mix, fixed_random_mask, ratio_constrained_mask


@dataclass
class MaskOutput:
    hard: Tensor        # (B, T, H, W) binary evidence mask I (eq. 16), used for clamping (eq. 35)
    weighted: Tensor    # (B, T, H, W) importance-weighted mask M' (eq. 17), differentiable
    relaxed: Tensor     # (B, T, H, W) forward = hard, backward = the soft top-k (eq. 16-17)
    relevance: Tensor   # (B, T, H, W) sampling scores p~ (eq. 14, 18)
    ratio: Tensor       # (B,) rho~ (eq. 13)
    budget: Tensor      # (B,) k_b
    context: Tensor     # (B, d_tau) F_{b,tau} (eq. 6), the DiT's user/task context
    f_short: Tensor     # (B, d) eq. 5
    f_long: Tensor      # (B, d) eq. 5
    pattern: Tensor     # (B, d) Z_b (eq. 8)


class UMask(nn.Module):
    """Mask generator conditioned only on the user embedding h_u and the task tau."""

    def __init__(self, cfg: UMaskConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = HierarchicalEncoder(cfg)
        self.adapt = TaskAdaptiveRepresentation(cfg)
        self.ratio = ObservationRatio(cfg)
        self.relevance = Relevance(cfg)
        self.register_buffer("cold_eps", torch.tensor(
            [t.cold_epsilon if t.cold else 0.0 for t in cfg.tasks]))
        self.register_buffer("fixed_ratio", torch.tensor([t.init_ratio for t in cfg.tasks]))

    def forward(self, h: Tensor, task: Tensor, candidates: Tensor, *,
                generator: torch.Generator | None = None, stochastic: bool = True,
                policy: str = "adaptive", reference: Tensor | None = None) -> MaskOutput:
        """h: (B, user_dim); task: (B,) long; candidates: (B, T, H, W) coordinates allowed as
        evidence. ``reference`` (R, user_dim): neighbour users for eq. 11 at inference time."""
        f_short, f_long, f_pat = self.encoder(h)                          # eq. 5
        f_task = self.adapt.task_context(f_short, f_long, f_pat, task)    # eq. 6
        lam = self.adapt.importance(f_task, task)                         # eq. 7
        z = self.adapt.refined_pattern(f_pat, task)                       # eq. 8
        ref_z = None
        if reference is not None:
            _, _, r_pat = self.encoder(reference)
            ref_task = task[:1].expand(reference.shape[0])
            ref_z = self.adapt.refined_pattern(r_pat, ref_task)
        ratio_out = self.ratio(z, task, reference=ref_z)                  # eq. 9-13
        p = self.relevance(z, lam, task)                                  # eq. 14-15
        p = cold_start_mix(p, self.cold_eps[task])                        # eq. 18 (eps=0 if warm)
        if policy == "adaptive":
            m = ratio_constrained_mask(p, ratio_out.ratio, candidates,
                                       temperature=self.cfg.relax_temperature,
                                       generator=generator, stochastic=stochastic)  # eq. 16-17
            hard, weighted, budget, ratio = m.hard, m.weighted, m.budget, ratio_out.ratio
            relaxed = m.relaxed
        elif policy == "fixed":
            hard = torch.zeros_like(candidates)
            for tid in task.unique():
                rows = task == tid
                hard[rows] = fixed_random_mask(candidates[rows], float(self.fixed_ratio[tid]),
                                               generator)
            weighted, relaxed, budget = hard, hard, hard.flatten(1).sum(-1).long()
            ratio = self.fixed_ratio[task]
        else:
            raise ValueError(f"policy must be 'adaptive' or 'fixed', got {policy!r}")
        return MaskOutput(hard=hard, weighted=weighted, relaxed=relaxed, relevance=p, ratio=ratio, budget=budget,
                          context=f_task, f_short=f_short, f_long=f_long, pattern=z)
