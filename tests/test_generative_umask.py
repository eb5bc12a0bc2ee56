"""U-MASK mask generator invariants (U-MASK paper eq. 5-18, 20) on tiny random tensors."""

from __future__ import annotations

import pytest
import torch

from generative.config import TaskConfig, UMaskConfig
from generative.umask import UMask, cold_start_mix, distribution_entropy, info_nce
from generative.umask.topk import evidence_budget, fixed_random_mask, ratio_constrained_mask

T, H, W, D_USER = 12, 2, 2, 16


@pytest.fixture
def cfg() -> UMaskConfig:
    tasks = [TaskConfig("short_term", horizon=2, init_ratio=0.4, recency=6.0),
             TaskConfig("long_term", horizon=6, init_ratio=0.4, recency=2.0),
             TaskConfig("cold_start", horizon=6, init_ratio=0.1, max_ratio=0.15, cold=True)]
    return UMaskConfig(n_slots=T, height=H, width=W, user_dim=D_USER, latent_dim=8, task_dim=8,
                       tasks=tasks)


@pytest.fixture
def umask(cfg) -> UMask:
    torch.manual_seed(0)
    return UMask(cfg)


def _candidates(B: int, horizon: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = (torch.rand(B, T, H, W, generator=g) > 0.2).float()
    c[:, T - horizon:] = 0
    return c


def test_hard_mask_has_exactly_budget_ones_inside_candidates():
    g = torch.Generator().manual_seed(1)
    B = 16
    p = torch.rand(B, T, H, W, generator=g) + 0.01
    ratio = torch.rand(B, generator=g)
    cand = _candidates(B, 3)
    m = ratio_constrained_mask(p, ratio, cand, generator=g)
    k = torch.minimum(torch.floor(ratio * T * H * W).long(), cand.flatten(1).sum(-1).long())
    assert torch.equal(m.budget, k)
    assert torch.equal(m.hard.flatten(1).sum(-1).long(), k)                   # eq. 16
    assert set(m.hard.unique().tolist()) <= {0.0, 1.0}
    assert (m.hard * (1 - cand)).sum() == 0
    assert torch.allclose(m.relaxed, m.hard)                                # straight-through value
    assert torch.allclose(m.weighted, m.hard * p)                           # eq. 17


def test_deterministic_topk_picks_highest_relevance():
    p = torch.arange(1, T * H * W + 1, dtype=torch.float32).view(1, T, H, W)
    cand = torch.ones(1, T, H, W)
    m = ratio_constrained_mask(p, torch.tensor([5.5 / (T * H * W)]), cand, stochastic=False)
    assert m.hard.flatten()[-5:].sum() == 5 and m.hard.sum() == 5


def test_gradients_reach_ratio_predictor_and_temporal_profile(umask, cfg):
    g = torch.Generator().manual_seed(0)
    B = 8
    h = torch.randn(B, D_USER, generator=g)
    task = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    cand = _candidates(B, 6)
    out = umask(h, task, cand, generator=g)
    assert torch.equal(out.hard.flatten(1).sum(-1).long(), out.budget)
    weights = torch.randn(out.weighted.shape, generator=g)
    (out.weighted * weights).sum().backward()
    for name, param in [("rho_tau", umask.ratio.base_logit), ("w of eq. 12", umask.ratio.scale.weight),
                        ("phi", umask.relevance.temporal_logit),
                        ("beta", umask.relevance.mix.bias)]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_gradient_reaches_ratio_through_threshold_only():
    """With weighted = relaxed * p and p fixed, d/d rho~ is non-zero: the relaxation carries it."""
    g = torch.Generator().manual_seed(3)
    p = torch.rand(4, T, H, W, generator=g) + 0.05
    ratio = torch.full((4,), 0.37, requires_grad=True)
    m = ratio_constrained_mask(p, ratio, torch.ones(4, T, H, W), generator=g)
    m.relaxed.sum().backward()
    assert (ratio.grad > 0).all()   # a larger ratio lowers the threshold: more soft evidence


def test_fisher_sensitivity_and_refinement(umask, cfg):
    h = torch.randn(5, D_USER)
    task = torch.tensor([0, 1, 2, 0, 1])
    f_short, f_long, f_pat = umask.encoder(h)                              # eq. 5
    assert f_short.shape == f_long.shape == f_pat.shape == (5, cfg.latent_dim)
    f_task = umask.adapt.task_context(f_short, f_long, f_pat, task)        # eq. 6
    assert f_task.shape == (5, cfg.task_dim)
    lam = umask.adapt.importance(f_task, task)                              # eq. 7
    g = umask.adapt.sensitivity(f_task, task)
    assert torch.allclose(lam ** 2, g * g + cfg.fisher_eps, atol=1e-6)
    assert (lam >= cfg.fisher_eps ** 0.5 - 1e-7).all()
    z = f_pat                                                               # eq. 8 by hand
    for _ in range(cfg.refine_steps):
        z = z + cfg.refine_eta * umask.adapt.refine(z, task)
    assert torch.allclose(umask.adapt.refined_pattern(f_pat, task), z)
    # Task-specific parameters: the same user gets different contexts under different tasks.
    same = h[:1].expand(3, -1)
    ctx = umask(same, torch.arange(3), torch.ones(3, T, H, W)).context
    assert not torch.allclose(ctx[0], ctx[1])


def test_grouping_similarity_and_ratio(umask, cfg):
    z = torch.randn(6, cfg.latent_dim)
    task = torch.zeros(6, dtype=torch.long)
    out = umask.ratio(z, task)
    assert torch.allclose(out.assignment.sum(-1), torch.ones(6))          # eq. 10
    assert torch.allclose(out.similarity, out.similarity.T, atol=1e-6)     # eq. 11
    assert ((out.gamma > 0) & (out.gamma < 1)).all()                       # eq. 12
    assert torch.allclose(out.ratio, umask.ratio.base_ratio()[0] * out.gamma)  # eq. 13
    cold = umask.ratio(z, torch.full((6,), 2)).ratio
    assert (cold < cfg.tasks[2].max_ratio).all()
    # A reference bank makes a user's budget independent of its batch mates.
    ref = torch.randn(10, cfg.latent_dim)
    alone = umask.ratio(z[:1], task[:1], reference=ref).ratio
    batch = umask.ratio(z, task, reference=ref).ratio
    assert torch.allclose(alone, batch[:1])


def test_budget_does_not_collapse_for_large_feature_norms(umask, cfg):
    """eq. 12 sees log(1 + ||Z_b||): a 1000x larger pattern vector moves gamma only a little."""
    z = torch.randn(6, cfg.latent_dim)
    task = torch.zeros(6, dtype=torch.long)
    small = umask.ratio(z, task).gamma
    large = umask.ratio(1000 * z, task).gamma
    assert (large > 0.5 * small).all() and (large < 1).all()


def test_relevance_mixes_temporal_and_spatial(umask, cfg):
    z, lam = torch.randn(3, cfg.latent_dim), torch.rand(3, cfg.latent_dim) + 0.1
    task = torch.tensor([0, 1, 2])
    p = umask.relevance(z, lam, task)
    beta = umask.relevance.beta(task)[:, None, None, None]
    phi = umask.relevance.temporal_profile(task)[:, :, None, None]
    psi = umask.relevance.spatial_affinity(z, lam).view(3, 1, H, W)
    assert torch.allclose(p, beta * phi + (1 - beta) * psi)                # eq. 14
    cos = torch.nn.functional.cosine_similarity(
        (z * lam)[:, None, :], umask.relevance.location[None], dim=-1)
    assert torch.allclose(psi.view(3, -1), cos.clamp_min(0), atol=1e-6)    # eq. 15
    assert (psi >= 0).all() and (p > 0).all()


def test_cold_start_mixing_raises_entropy():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(8, T, H, W, generator=g) ** 4 + 1e-3
    cand = torch.ones_like(p)
    base = distribution_entropy(p, cand)
    previous = base
    for eps in (0.25, 0.5, 1.0):
        mixed = cold_start_mix(p, eps)                                     # eq. 18
        ent = distribution_entropy(mixed, cand)
        assert (ent >= previous - 1e-6).all()
        previous = ent
    assert torch.allclose(previous, torch.full((8,), float(torch.log(torch.tensor(T * H * W * 1.0)))))
    assert torch.allclose(cold_start_mix(p, 0.0), p)


def test_cold_start_masks_have_higher_entropy_than_short_term(umask):
    """By construction (flat temporal prior + eq. 18) the cold-start sampling distribution and the
    masks drawn from it are more spread out than the recency-weighted short-term ones."""
    g = torch.Generator().manual_seed(0)
    B = 32
    h = torch.randn(B, D_USER, generator=g)
    cand = torch.ones(B, T, H, W)
    cand[:, T - 6:] = 0                       # the same history window for both tasks
    short = umask(h, torch.zeros(B, dtype=torch.long), cand, generator=g)
    cold = umask(h, torch.full((B,), 2), cand, generator=g)
    assert (distribution_entropy(cold.relevance, cand)
            > distribution_entropy(short.relevance, cand)).all()
    # Empirical entropy of where evidence lands, with equal budgets drawn from each distribution.
    ratio = torch.full((B,), 0.1)

    def landing_entropy(p: torch.Tensor) -> float:
        hits = sum(ratio_constrained_mask(p, ratio, cand, generator=g).hard for _ in range(20))
        freq = hits.sum(0).flatten() / hits.sum()
        return float(-(freq * freq.clamp_min(1e-12).log()).sum())

    assert landing_entropy(cold.relevance) > landing_entropy(short.relevance)


def test_fixed_policy_is_random_with_fixed_ratio(umask):
    cand = torch.ones(4, T, H, W)
    out = umask(torch.randn(4, D_USER), torch.zeros(4, dtype=torch.long), cand, policy="fixed",
                generator=torch.Generator().manual_seed(0))
    assert (out.hard.flatten(1).sum(-1) == int(0.4 * T * H * W)).all()
    a = fixed_random_mask(cand, 0.4, torch.Generator().manual_seed(0))
    b = fixed_random_mask(cand, 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="policy"):
        umask(torch.randn(1, D_USER), torch.zeros(1, dtype=torch.long), cand[:1], policy="other")


def test_budget_capped_by_candidates():
    cand = torch.zeros(2, T, H, W)
    cand[0, :2] = 1
    k = evidence_budget(torch.tensor([0.9, 0.9]), cand)
    assert k.tolist() == [2 * H * W, 0]


def test_info_nce_prefers_aligned_pairs():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 8, generator=g)
    aligned = info_nce(a, a + 0.01 * torch.randn(16, 8, generator=g))       # eq. 20
    shuffled = info_nce(a, a[torch.randperm(16, generator=g)])
    assert aligned < shuffled
    assert info_nce(a[:1], a[:1]) == 0
