"""Invariants of the PITuning losses and forgotten sets (eq. 5-11)."""

import math

import pytest
import torch
import torch.nn.functional as F

from generative.intent.data import MASK, PAD
from generative.intent.losses import (
    distillation_loss,
    dynamic_forgotten_set,
    focal_loss,
    forgotten_set,
    mask_events,
    population_loss,
    reconstruction_loss,
    static_forgotten_set,
    unlearning_loss,
)


def logits(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_distillation_soft_term_is_zero_when_student_equals_teacher():
    m = logits(8, 5)
    y = torch.randint(0, 5, (8,))
    for eps in (0.5, 1.0, 4.0):
        assert distillation_loss(m, m.clone(), y, alpha=1.0, temperature=eps) == pytest.approx(
            0.0, abs=1e-6)
    # alpha mixes the terms (eq. 7): with equal logits only (1 - alpha) CE remains
    assert distillation_loss(m, m.clone(), y, alpha=0.3) == pytest.approx(
        0.7 * float(F.cross_entropy(m, y)), rel=1e-5)


def test_distillation_soft_term_is_kl_times_eps_squared():
    s, t = logits(6, 4, seed=1), logits(6, 4, seed=2)
    y = torch.zeros(6, dtype=torch.long)
    eps = 2.0
    p_t, p_s = F.softmax(t / eps, -1), F.softmax(s / eps, -1)
    kl = (p_t * (p_t.log() - p_s.log())).sum(-1).mean() * eps ** 2
    assert distillation_loss(s, t, y, alpha=1.0, temperature=eps) == pytest.approx(float(kl),
                                                                                   rel=1e-5)
    assert float(kl) > 0


def test_forgotten_sets_on_constructed_distributions():
    p_out = torch.tensor([0.50, 0.495, 0.005, 0.0])
    assert static_forgotten_set(p_out, 0.01).tolist() == [False, False, True, True]   # eq. 8
    p_pop = torch.tensor([0.6, 0.3, 0.05, 0.05])           # 1/N_I = 0.25
    p_in = torch.tensor([0.2, 0.2, 0.5, 0.1])
    assert dynamic_forgotten_set(p_pop, p_in).tolist() == [False, False, True, False]  # eq. 9
    # a user-frequent intent the population predictor does output still joins through eq. 9
    p_out2 = torch.tensor([0.4, 0.3, 0.2, 0.1])
    p_pop2 = torch.tensor([0.5, 0.3, 0.1, 0.1])
    p_in2 = torch.tensor([0.1, 0.1, 0.1, 0.7])
    assert forgotten_set(p_out2, p_pop2, p_in2, 0.01).tolist() == [False, False, False, True]
    assert forgotten_set(p_out, p_pop, p_in, 0.01).tolist() == [False, False, True, True]
    # exactly at the thresholds nothing is forgotten (strict inequalities)
    assert not dynamic_forgotten_set(torch.full((4,), 0.25), torch.full((4,), 0.25)).any()
    assert not static_forgotten_set(torch.full((4,), 0.01), 0.01).any()


def test_unlearning_loss_terms_and_gradient_directions():
    ref = logits(6, 4, seed=3)
    target = torch.tensor([0, 1, 2, 3, 0, 3])
    forget = torch.tensor([False, False, False, True])
    x = (ref + logits(6, 4, seed=5)).requires_grad_(True)   # an updated model, not the original
    ce = (-(F.softmax(ref, -1) * F.log_softmax(x, -1)).sum(-1)).detach()
    keep, drop = target != 3, target == 3
    loss = unlearning_loss(x, ref, target, forget, lam=2.0)
    assert float(loss.detach()) == pytest.approx(float(2.0 * ce[keep].mean() - ce[drop].mean()),
                                                rel=1e-5)
    # one gradient step: CE to the original rises on forgotten samples, falls on retained ones
    loss.backward()
    with torch.no_grad():
        y = x - 0.2 * x.grad
        ce_new = -(F.softmax(ref, -1) * F.log_softmax(y, -1)).sum(-1)
    assert ce_new[drop].mean() > ce[drop].mean()
    assert ce_new[keep].mean() < ce[keep].mean()
    # no forgotten samples: pure retain term; no retained samples: pure (negative) forget term
    only_keep = unlearning_loss(ref[:2], ref[:2], torch.tensor([0, 1]), forget, lam=1.0)
    assert float(only_keep) > 0
    only_drop = unlearning_loss(ref[:2], ref[:2], torch.tensor([3, 3]), forget, lam=1.0)
    assert float(only_drop) < 0


def test_unlearning_forget_term_is_capped():
    ref = torch.tensor([[10.0, 0.0, 0.0]])
    x = torch.tensor([[-10.0, 0.0, 0.0]], requires_grad=True)   # far from the original
    loss = unlearning_loss(x, ref, torch.tensor([2]), torch.tensor([False, False, True]),
                           forget_cap=1.0)
    assert float(loss) == pytest.approx(-1.0)
    loss.backward()
    assert torch.all(x.grad == 0)


def test_mask_events_masks_only_real_positions():
    event = torch.tensor([[5, 6, 7, PAD, PAD], [8, PAD, PAD, PAD, PAD]])
    length = torch.tensor([3, 1])
    masked, target_mask = mask_events(event, length, 0.5, torch.Generator().manual_seed(0))
    assert target_mask[:, 3:].sum() == 0 and target_mask[1, 1:].sum() == 0
    assert target_mask.sum(1).min() >= 1                          # every window masks one
    assert torch.all(masked[target_mask] == MASK)
    assert torch.equal(masked[~target_mask], event[~target_mask])


def test_reconstruction_loss_only_sees_masked_positions():
    event = torch.tensor([[5, 6, 7]])
    target_mask = torch.tensor([[False, True, False]])
    out = logits(1, 3, 10)
    base = reconstruction_loss(out, event, target_mask)
    changed = out.clone()
    changed[0, 0] += 5.0
    changed[0, 2] -= 5.0
    assert reconstruction_loss(changed, event, target_mask) == pytest.approx(float(base))
    assert base == pytest.approx(float(F.cross_entropy(out[0, 1:2], event[0, 1:2])))
    intent = logits(1, 4, seed=9)
    total = population_loss(intent, torch.tensor([2]), out, event, target_mask)   # eq. 5
    assert total == pytest.approx(float(base + F.cross_entropy(intent, torch.tensor([2]))))


def test_focal_loss_reduces_to_ce_and_downweights_easy_samples():
    m, y = logits(10, 4, seed=4), torch.randint(0, 4, (10,))
    assert focal_loss(m, y, gamma=0.0) == pytest.approx(float(F.cross_entropy(m, y)), rel=1e-5)
    easy = torch.tensor([[8.0, 0.0, 0.0]])
    assert float(focal_loss(easy, torch.tensor([0]), 2.0)) < 1e-3 * float(
        F.cross_entropy(easy, torch.tensor([0]))) + 1e-9
    assert math.isfinite(float(focal_loss(m, y)))


def test_lr_schedule_warmup_then_cosine():
    from itertools import pairwise

    from generative.intent.train import TrainConfig, lr_factor

    config = TrainConfig(steps=10, warmup_steps=4, schedule="cosine")
    factors = [lr_factor(s, config) for s in range(10)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]                 # linear warm-up
    assert factors[4] == 1.0 and all(a > b for a, b in pairwise(factors[4:]))
    assert abs(lr_factor(10, config)) < 1e-12                     # cosine reaches 0 at S
    assert [lr_factor(s, TrainConfig(steps=5)) for s in range(5)] == [1.0] * 5
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(0, TrainConfig(schedule="linear"))


def test_prior_shift_is_the_smoothed_log_ratio():
    from generative.intent.losses import prior_shift

    p_pop = torch.tensor([0.5, 0.3, 0.15, 0.05])
    labels = torch.tensor([2, 2, 2, 0])
    k = 2.0
    p_dev = (torch.tensor([1.0, 0.0, 3.0, 0.0]) + k * p_pop) / (4 + k)
    expected = p_dev.log() - p_pop.log()
    assert torch.allclose(prior_shift(labels, p_pop, k), expected, atol=1e-6)
    # the user's frequent intent moves up, absent ones down; no data -> no shift
    shift = prior_shift(labels, p_pop, k)
    assert shift[2] > 0 and shift[1] < 0 and shift[3] < 0
    assert torch.allclose(prior_shift(torch.zeros(0, dtype=torch.long), p_pop, k),
                          torch.zeros(4), atol=1e-6)
    # a huge pseudo-count keeps the population prior
    assert prior_shift(labels, p_pop, 1e9).abs().max() < 1e-6
    # softmax(logits + shift) is the Bayes posterior under the user's prior (Saerens et al.)
    z = logits(3, 4, seed=5)
    post = F.softmax(z, -1) * p_dev / p_pop
    assert torch.allclose(F.softmax(z + shift, -1), post / post.sum(-1, keepdim=True),
                          atol=1e-5)
    with pytest.raises(ValueError, match="pseudo_count"):
        prior_shift(labels, p_pop, 0.0)

