"""Ratio-constrained mask sampling: Gumbel top-k with a continuous relaxation (eq. 16-18).

U-MASK paper (seed 000) section 4.3.3-4.3.4:
- budget k_b = floor(rho~_{b,tau} N), N = T H W (capped at the number of candidate coordinates);
- eq. 16: I_{b,tau} = OneHot(GumbelTopK(log p + G, k_b)), exactly k_b ones;
- eq. 17: M'_{b,tau} = I_{b,tau} * p, the importance-weighted mask;
- eq. 18: cold start mixes p with the uniform distribution: (1 - eps) p + eps / (T H W).

Relaxation (section 4.4, "continuous relaxation of the Top-k operator"): a soft mask
sigmoid((log p + G - theta) / temperature) whose threshold theta lies between the k-th and
(k+1)-th perturbed score and moves continuously with rho~ N. The forward value is the hard mask;
the backward pass uses the soft one (straight-through), so gradients reach the ratio predictor
(through theta) and the relevance scores (temporal profile, mixing gate, spatial affinity).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TopKMask:
    hard: Tensor       # (B, T, H, W) I_{b,tau}: exactly k_b ones (eq. 16)
    relaxed: Tensor    # (B, T, H, W) forward = hard, backward = soft relaxation
    weighted: Tensor   # (B, T, H, W) M' = I * p (eq. 17), differentiable
    budget: Tensor     # (B,) long, k_b


def cold_start_mix(p: Tensor, epsilon: float | Tensor) -> Tensor:
    """Eq. 18 on the normalised distribution, returned on the scale of ``p``.

    p: (B, T, H, W) positive scores. The distribution p / sum(p) is mixed with the uniform
    1 / (T H W); the result is multiplied back by sum(p) so the weighted mask (eq. 17) keeps the
    relevance scale. ``epsilon`` may be a (B,) tensor (0 for non-cold samples).
    """
    flat = p.flatten(1)                                                 # (B, N)
    total = flat.sum(-1, keepdim=True)
    dist = flat / total
    eps = torch.as_tensor(epsilon, dtype=p.dtype, device=p.device).reshape(-1, 1)
    mixed = (1 - eps) * dist + eps / flat.shape[1]                      # eq. 18
    return (mixed * total).view_as(p)


def evidence_budget(ratio: Tensor, candidates: Tensor) -> Tensor:
    """k_b = floor(rho~_b N), capped at the number of candidate coordinates of each user."""
    n_total = candidates[0].numel()
    n_cand = candidates.flatten(1).sum(-1).long()
    return torch.minimum(torch.floor(ratio.detach() * n_total).long(), n_cand)  # (B,)


def gumbel_noise(shape: torch.Size, generator: torch.Generator | None, device=None) -> Tensor:
    u = torch.rand(shape, generator=generator, device=device).clamp(1e-10, 1 - 1e-10)
    return -torch.log(-torch.log(u))


def ratio_constrained_mask(p: Tensor, ratio: Tensor, candidates: Tensor, *,
                           temperature: float = 0.5, generator: torch.Generator | None = None,
                           stochastic: bool = True) -> TopKMask:
    """Eq. 16-17 with the straight-through relaxation.

    p: (B, T, H, W) relevance (> 0); ratio: (B,) rho~; candidates: (B, T, H, W) 1 where a
    coordinate may be revealed. ``stochastic=False`` drops the Gumbel noise (deterministic top-k).
    """
    shape = p.shape
    flat_p = p.flatten(1)                                               # (B, N)
    cand = candidates.flatten(1) > 0
    n_total = flat_p.shape[1]
    k = evidence_budget(ratio, candidates)                             # (B,)
    scores = flat_p.clamp_min(1e-12).log()
    if stochastic:
        scores = scores + gumbel_noise(scores.shape, generator, scores.device)  # log p + G
    masked = scores.masked_fill(~cand, float("-inf"))
    sorted_s, order = masked.sort(dim=-1, descending=True)              # (B, N)
    rank_hit = torch.arange(n_total, device=p.device)[None, :] < k[:, None]
    hard = torch.zeros_like(flat_p).scatter(1, order, rank_hit.to(flat_p.dtype))  # eq. 16

    # Threshold between the k-th and (k+1)-th largest candidate score, continuous in rho~ N.
    finite = torch.isfinite(sorted_s)
    floor_val = torch.where(finite, sorted_s, sorted_s.new_full((), float("inf"))).min(-1).values
    floor_val = torch.where(torch.isfinite(floor_val), floor_val, torch.zeros_like(floor_val))
    filled = torch.where(finite, sorted_s, (floor_val - 1.0)[:, None])
    padded = torch.cat([filled[:, :1] + 1.0, filled, filled[:, -1:] - 1.0], dim=1)  # (B, N + 2)
    upper = padded.gather(1, k[:, None]).squeeze(1)                     # k-th largest
    lower = padded.gather(1, (k + 1)[:, None]).squeeze(1)               # (k+1)-th largest
    frac = (ratio * n_total - k.to(ratio.dtype)).clamp(0.0, 1.0)        # differentiable in rho~
    theta = upper + (0.25 + 0.5 * frac) * (lower - upper)
    soft = torch.sigmoid((scores - theta[:, None]) / temperature) * cand
    relaxed = hard + soft - soft.detach()                               # straight-through
    weighted = relaxed * flat_p                                         # eq. 17
    return TopKMask(hard=hard.view(shape), relaxed=relaxed.view(shape),
                    weighted=weighted.view(shape), budget=k)


def fixed_random_mask(candidates: Tensor, ratio: float, generator: torch.Generator | None = None
                      ) -> Tensor:
    """The non-adaptive control (RQ2): floor(ratio N) candidates chosen uniformly at random."""
    flat = candidates.flatten(1) > 0
    k = torch.minimum(torch.full((flat.shape[0],), int(ratio * flat.shape[1])),
                      flat.sum(-1)).to(candidates.device)
    noise = torch.rand(flat.shape, generator=generator).to(candidates.device)
    order = noise.masked_fill(~flat, -1.0).argsort(dim=-1, descending=True)
    hit = torch.arange(flat.shape[1], device=candidates.device)[None, :] < k[:, None]
    return torch.zeros_like(flat, dtype=candidates.dtype).scatter(
        1, order, hit.to(candidates.dtype)).view_as(candidates)


def distribution_entropy(p: Tensor, candidates: Tensor) -> Tensor:
    """Entropy (nats) of p normalised over each user's candidate coordinates: (B,)."""
    flat = p.flatten(1) * (candidates.flatten(1) > 0)
    dist = flat / flat.sum(-1, keepdim=True).clamp_min(1e-12)
    return -(dist * dist.clamp_min(1e-12).log()).sum(-1)
