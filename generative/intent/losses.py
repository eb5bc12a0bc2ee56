"""Losses and forgotten sets of PITuning (eq. 5-11) and the focal-loss baseline.

- eq. 5: population loss = masked event reconstruction CE + intent CE;
- eq. 6-7: distillation, alpha * KL at temperature epsilon + (1 - alpha) * CE;
- eq. 8-10: static, dynamic and union forgotten intent sets;
- eq. 11: unlearning loss, lambda * CE on retained-intent samples - CE on forgotten-intent ones;
- ``prior_shift``: the label-shift correction of a population posterior to one user's prior
  (Saerens et al. 2002), an optional initialisation of the device adapter's bias b_2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from generative.intent.data import MASK, PAD


def mask_events(event: torch.Tensor, length: torch.Tensor, rate: float,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """E_m = Mask(E_e) (Alg. 1 line 4): replace a random ``rate`` of real events by MASK.

    Returns (masked events (B, I), target mask (B, I) bool); every window with a real event
    gets at least one masked position.
    """
    size = event.shape[1]
    real = torch.arange(size)[None, :] < length[:, None]                # (B, I)
    draw = torch.rand(event.shape, generator=generator) < rate
    forced = torch.randint(0, size, (event.shape[0],), generator=generator) % length.clamp(min=1)
    draw[torch.arange(event.shape[0]), forced] = True
    target_mask = draw & real & (event != PAD)
    return event.masked_fill(target_mask, MASK), target_mask


def reconstruction_loss(event_logits: torch.Tensor, event: torch.Tensor,
                        target_mask: torch.Tensor) -> torch.Tensor:
    """L_M = CE(e_i, e_m) over the masked positions only (eq. 5), averaged over their count."""
    if not target_mask.any():
        return event_logits.sum() * 0.0
    return F.cross_entropy(event_logits[target_mask], event[target_mask])


def population_loss(intent_logits: torch.Tensor, target: torch.Tensor,
                    event_logits: torch.Tensor | None = None, event: torch.Tensor | None = None,
                    target_mask: torch.Tensor | None = None,
                    recon_weight: float = 1.0) -> torch.Tensor:
    """L_pop = L_M + L_CE(m, L) (eq. 5); without event logits it is the intent CE alone."""
    loss = F.cross_entropy(intent_logits, target)
    if event_logits is not None and recon_weight > 0:
        loss = loss + recon_weight * reconstruction_loss(event_logits, event, target_mask)
    return loss


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      target: torch.Tensor, alpha: float = 0.5,
                      temperature: float = 1.0) -> torch.Tensor:
    """L_D = alpha * L_soft + (1 - alpha) * L_hard (eq. 7).

    L_soft = KL(softmax(M_t / eps) || softmax(M_s / eps)) * eps^2 (eq. 6; the eps^2 factor
    keeps gradient scale independent of eps, Hinton et al.); L_hard = CE(M_s, L).
    """
    eps = temperature
    soft = F.kl_div(F.log_softmax(student_logits / eps, dim=-1),
                    F.log_softmax(teacher_logits / eps, dim=-1),
                    reduction="batchmean", log_target=True) * eps * eps   # eq. 6 L_soft
    hard = F.cross_entropy(student_logits, target)                        # eq. 6 L_hard
    return alpha * soft + (1.0 - alpha) * hard                            # eq. 7


def static_forgotten_set(p_out: torch.Tensor, threshold: float) -> torch.Tensor:
    """F_sta (eq. 8): intents whose share of the population predictor's outputs < threshold."""
    return p_out < threshold


def dynamic_forgotten_set(p_pop: torch.Tensor, p_in: torch.Tensor) -> torch.Tensor:
    """F_dyn (eq. 9): P_pop(i) < 1/N_I and P_in(i) > 1/N_I (rare globally, common for the user)."""
    uniform = 1.0 / p_pop.shape[-1]
    return (p_pop < uniform) & (p_in > uniform)


def forgotten_set(p_out: torch.Tensor, p_pop: torch.Tensor, p_in: torch.Tensor,
                  threshold: float) -> torch.Tensor:
    """F = F_dyn U F_sta (eq. 10) as a bool mask over intents; R = the complement."""
    return dynamic_forgotten_set(p_pop, p_in) | static_forgotten_set(p_out, threshold)


def intent_distribution(labels: torch.Tensor, n_intents: int) -> torch.Tensor:
    """Share of each intent among ``labels`` (N,) -> (N_I,); zeros when there are none."""
    counts = torch.bincount(labels, minlength=n_intents).double()
    return counts / counts.sum().clamp(min=1.0)


def prior_shift(labels: torch.Tensor, p_pop: torch.Tensor, pseudo_count: float) -> torch.Tensor:
    """log p_dev(y) - log P_pop(y) (N_I,): the label-shift correction of a posterior.

    A predictor trained where the label prior is P_pop gives p(y | x) proportional to
    p(x | y) P_pop(y); for a user whose intents follow p_dev instead, the Bayes posterior is
    p(y | x) p_dev(y) / P_pop(y) (Saerens, Latinne and Decaestecker, Neural Computation 2002),
    i.e. the logits plus this vector. p_dev is the user's tuning-intent frequency (the P_in of
    eq. 9) smoothed towards the population with ``pseudo_count`` k (a Dirichlet prior with
    mean P_pop): p_dev = (n_y + k P_pop(y)) / (n + k); with no data it is P_pop and the shift
    is 0.
    """
    if pseudo_count <= 0:
        raise ValueError(f"pseudo_count must be > 0, got {pseudo_count}")
    p_pop = p_pop.double()
    counts = torch.bincount(labels, minlength=p_pop.shape[0]).double()
    p_dev = (counts + pseudo_count * p_pop) / (counts.sum() + pseudo_count)
    tiny = torch.finfo(torch.float64).tiny
    return (p_dev.clamp(min=tiny).log() - p_pop.clamp(min=tiny).log()).float()


def unlearning_loss(logits: torch.Tensor, reference_logits: torch.Tensor,
                    target: torch.Tensor, forget: torch.Tensor, lam: float = 1.0,
                    forget_cap: float | None = None) -> torch.Tensor:
    """L_un = lambda * L_CE(M_r, R) - L_CE(M_f, F) (eq. 11).

    Samples whose label is a retained intent pull the updated model towards the original
    model's output distribution (``reference_logits``); samples whose label is a forgotten
    intent push it away from the original output, removing what population tuning memorised
    for them. Each term is a mean over its samples (0 when it has none). ``forget_cap``
    bounds the per-sample forgetting CE (default 2 log N_I) so gradient ascent stops there.
    """
    is_forget = forget[target]                                    # (B,) bool
    reference = F.softmax(reference_logits.detach(), dim=-1)      # (B, N_I)
    ce = -(reference * F.log_softmax(logits, dim=-1)).sum(-1)     # (B,) CE to the original
    cap = 2.0 * math.log(logits.shape[-1]) if forget_cap is None else forget_cap
    zero = logits.sum() * 0.0
    retain = ce[~is_forget].mean() if (~is_forget).any() else zero
    forget_term = ce[is_forget].clamp(max=cap).mean() if is_forget.any() else zero
    return lam * retain - forget_term  # eq. 11


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al.), the class-imbalance baseline: mean of -(1 - p_t)^gamma log p_t."""
    log_p = F.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)  # (B,)
    return (-(1.0 - log_p.exp()).pow(gamma) * log_p).mean()
