"""DiT backbone, VP schedule, samplers and loss (U-MASK paper eq. 28-35) on tiny random tensors."""

from __future__ import annotations

import pytest
import torch

from generative.config import DiTConfig, ScheduleConfig
from generative.dit import (
    DDIMScheduler,
    DDPMScheduler,
    DiT,
    VPSchedule,
    clamp_evidence,
    masked_diffusion_loss,
    patchify,
    sample,
    unpatchify,
)

C, T, H, W = 3, 8, 2, 2


def _dit(fusion: str = "concat", patch=(2, 1, 2)) -> DiT:
    torch.manual_seed(0)
    return DiT(DiTConfig(channels=C, n_slots=T, height=H, width=W, patch=patch, hidden=16,
                         depth=2, heads=2, context_dim=4, n_tasks=3, fusion=fusion))


def _inputs(B: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, T, H, W, generator=g)
    mask = (torch.rand(B, T, H, W, generator=g) > 0.5).float()
    return (x, torch.randint(0, 50, (B,), generator=g), mask.unsqueeze(1) * x, mask,
            torch.randn(B, 4, generator=g), torch.randint(0, 3, (B,), generator=g))


def _perturb(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("fusion", ["concat", "cross"])
def test_fresh_dit_outputs_zero_and_trained_does_not(fusion):
    model = _dit(fusion)
    out = model(*_inputs())
    assert out.shape == (3, C, T, H, W)
    assert torch.count_nonzero(out) == 0                                   # adaLN-Zero
    _perturb(model)
    assert model(*_inputs()).abs().sum() > 0


def test_patchify_round_trip_and_token_count():
    cfg = DiTConfig(channels=C, n_slots=T, height=H, width=W, patch=(2, 1, 2))
    x = torch.randn(2, C, T, H, W)
    tokens = patchify(x, cfg.patch)
    assert tokens.shape == (2, (T // 2) * (H // 1) * (W // 2), C * 2 * 1 * 2)
    assert torch.equal(unpatchify(tokens, cfg), x)
    with pytest.raises(ValueError, match="patch"):
        DiTConfig(channels=C, n_slots=7, patch=(2, 1, 1))


def test_evidence_changes_the_prediction():
    model = _dit("cross")
    _perturb(model)
    x, t, ev, mask, ctx, task = _inputs()
    a = model(x, t, ev, mask, ctx, task)
    b = model(x, t, ev + 1.0, mask, ctx, task)
    c = model(x, t, ev, mask, ctx + 1.0, task)                             # eq. 34 conditioning
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_invariants(kind):
    s = VPSchedule(ScheduleConfig(train_steps=100, beta_schedule=kind))
    bar = s.alphas_cumprod
    assert (bar[1:] < bar[:-1]).all() and (bar > 0).all() and (bar < 1).all()
    assert torch.allclose(bar, torch.cumprod(s.alphas, 0))                 # eq. 30
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4096, 4, generator=g)
    noise = torch.randn(4096, 4, generator=g)
    t0 = s.add_noise(x0, noise, torch.zeros(4096, dtype=torch.long))
    assert (t0 - x0).std() < 0.05 and (t0 - x0).abs().mean() < 0.03       # ~X_0 at t = 0
    for t in (10, 50, 99):                                                 # eq. 31
        xt = s.add_noise(x0, noise, torch.full((4096,), t))
        expect = bar[t].sqrt() * x0 + (1 - bar[t]).sqrt() * noise
        assert torch.allclose(xt, expect, atol=1e-6)
        assert abs(float(xt.var()) - 1.0) < 0.1                            # variance preserving
    assert s.alphas_cumprod[-1] < 0.05


def test_set_timesteps():
    s = DDIMScheduler(ScheduleConfig(train_steps=100))
    ts = s.set_timesteps(10)
    assert len(ts) == 10 and ts[0] == 99 and ts[-1] == 0 and (ts[1:] < ts[:-1]).all()
    assert len(s.set_timesteps(None)) == 100
    assert s.set_timesteps(1).tolist() == [99]      # one step starts from pure noise
    with pytest.raises(ValueError):
        s.set_timesteps(0)


@pytest.mark.parametrize("scheduler_cls", [DDPMScheduler, DDIMScheduler])
@pytest.mark.parametrize("prediction", ["sample", "epsilon"])
def test_oracle_denoiser_recovers_data(scheduler_cls, prediction):
    """With an exact x0 (or eps) predictor every sampler ends at the data."""
    cfg = ScheduleConfig(train_steps=50, prediction_type=prediction, clip_sample=None)
    s = scheduler_cls(cfg)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, C, T, H, W, generator=g) * 2 - 1

    def oracle(x_t, t):
        if prediction == "sample":
            return x0
        a = s.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    out = sample(oracle, s, x0, torch.zeros(2, T, H, W), num_steps=10, generator=g)
    assert torch.allclose(out, x0, atol=1e-4)


@pytest.mark.parametrize("scheduler_cls,steps", [(DDPMScheduler, None), (DDIMScheduler, 5)])
def test_sampler_returns_observed_entries_exactly(scheduler_cls, steps):
    model = _dit()
    _perturb(model)
    x, _, _, mask, ctx, task = _inputs(seed=2)
    known = x.clamp(-1, 1)
    s = scheduler_cls(ScheduleConfig(train_steps=30))
    denoise = lambda x_t, t: model(x_t, t, mask.unsqueeze(1) * known, mask, ctx, task)
    out = sample(denoise, s, known, mask, num_steps=steps, generator=torch.Generator().manual_seed(0))
    m = mask.bool().unsqueeze(1).expand_as(out)
    assert torch.equal(out[m], known[m])                                   # eq. 35
    assert not torch.equal(out[~m], known[~m])


def test_clamp_evidence_formula():
    x, known = torch.randn(2, C, T, H, W), torch.randn(2, C, T, H, W)
    mask = (torch.rand(2, T, H, W) > 0.5).float()
    out = clamp_evidence(x, known, mask)
    m = mask.unsqueeze(1)
    assert torch.equal(out, (1 - m) * x + m * known)


def test_loss_covers_target_mask_only():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, C, T, H, W, generator=g, requires_grad=True)
    target = torch.randn(2, C, T, H, W, generator=g)
    tmask = (torch.rand(2, T, H, W, generator=g) > 0.6).float()
    loss = masked_diffusion_loss(pred, target, tmask)                      # eq. 32
    m = tmask.bool().unsqueeze(1).expand_as(pred)
    expect = ((pred - target)[m] ** 2).mean()
    assert torch.allclose(loss, expect)
    loss.backward()
    assert torch.count_nonzero(pred.grad[~m]) == 0 and torch.count_nonzero(pred.grad[m]) > 0
    moved = pred.detach().clone()
    moved[~m] += 100.0
    assert torch.allclose(masked_diffusion_loss(moved, target, tmask), loss.detach())
    assert masked_diffusion_loss(pred, target, torch.zeros_like(tmask)) == 0


def test_clip_with_a_shift_bounds_x0_in_data_space():
    """A centred task diffuses X_0 - offset: the clip keeps X_0 + offset in [-1, 1], so a
    deviation of up to 2 survives where the plain clip would cut it at 1."""
    sched = DDIMScheduler(ScheduleConfig(train_steps=20))
    t = torch.full((2,), 19, dtype=torch.long)
    x_t = torch.zeros(2, 1, 3, 1, 1)
    out = torch.tensor([1.8, -0.5, -3.0]).view(1, 1, 3, 1, 1).expand(2, 1, 3, 1, 1)
    shift = torch.tensor([-0.9, 0.4]).view(2, 1, 1, 1, 1)
    x0, _ = sched.to_x0_eps(out, t, x_t, shift)
    assert ((x0 + shift) <= 1 + 1e-6).all() and ((x0 + shift) >= -1 - 1e-6).all()
    assert torch.allclose(x0[0].flatten(), torch.tensor([1.8, -0.1, -0.1]))   # offset -0.9
    assert torch.allclose(x0[1].flatten(), torch.tensor([0.6, -0.5, -1.4]))   # offset +0.4
    plain, _ = sched.to_x0_eps(out, t, x_t)
    assert torch.allclose(plain[0].flatten(), torch.tensor([1.0, -0.5, -1.0]))
    zero, _ = sched.to_x0_eps(out, t, x_t, torch.zeros_like(shift))
    assert torch.equal(zero, plain)
