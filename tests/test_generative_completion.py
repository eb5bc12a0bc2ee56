"""Completion API, training, baselines and persistence of U-MASK + DiT on tiny tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from generative.baselines import historical_average, population_mean, seasonal_naive
from generative.completion import UMaskCompleter
from generative.config import DIT_PRESETS, CompletionConfig
from generative.evaluate import compare, group_errors
from generative.standin import histogram_embedding
from generative.tasks import task_masks
from generative.train import (
    TrainConfig,
    WeightAverage,
    fit,
    split_validation,
    training_loss,
    validation_loss,
)

N, C, T, D_USER = 24, 3, 12, 16


def _data(seed: int = 0):
    """Users with a shared daily shape, a per-user level and a per-user channel mix."""
    g = torch.Generator().manual_seed(seed)
    shape = torch.sin(torch.linspace(0, 3.14, T)) ** 2                      # (T,)
    level = torch.rand(N, 1, 1, generator=g)
    mix = torch.softmax(torch.randn(N, C, 1, generator=g) * 2, dim=1)
    v = (level * mix * shape[None, None] * 2).clamp(0, 1)                    # (N, C, T)
    v = (v + 0.02 * torch.rand(N, C, T, generator=g)).clamp(0, 1)
    values = v[..., None, None]                                            # (N, C, T, 1, 1)
    observed = torch.ones(N, T, 1, 1)
    h = torch.from_numpy(histogram_embedding(values.numpy(), list(range(C)), T // 2, D_USER))
    return values, observed, h


def _model(policy: str = "adaptive", fusion: str = "concat") -> UMaskCompleter:
    torch.manual_seed(0)
    return UMaskCompleter(DIT_PRESETS["umask-tiny"](channels=C, n_slots=T, user_dim=D_USER,
                                                    train_steps=40, fusion=fusion,
                                                    mask_policy=policy))


def test_complete_returns_samples_median_spread_and_exact_evidence():
    values, observed, h = _data()
    model = _model()
    out = model.complete(values, observed, h, "short_term", n_samples=4, steps=5, seed=1)
    assert out.samples.shape == (4, N, C, T, 1, 1)
    assert out.median.shape == out.spread.shape == (N, C, T, 1, 1)
    assert (out.spread >= 0).all()
    assert (out.median >= out.samples.min(0).values).all()
    assert (out.median <= out.samples.max(0).values).all()
    ev = out.evidence_mask.bool()[None, :, None].expand_as(out.samples)
    assert ev.any()
    assert torch.equal(out.samples[ev], values[None].expand_as(out.samples)[ev])
    # evidence only from the history window, targets only in the target window
    horizon = model.cfg.umask.tasks[0].horizon
    assert out.evidence_mask[:, T - horizon:].sum() == 0
    assert out.target_mask[:, :T - horizon].sum() == 0
    again = model.complete(values, observed, h, "short_term", n_samples=4, steps=5, seed=1)
    assert torch.equal(again.samples, out.samples)


def test_complete_rejects_bad_shapes():
    values, observed, h = _data()
    model = _model()
    with pytest.raises(ValueError, match="values"):
        model.complete(values[:, :2], observed, h)
    with pytest.raises(ValueError, match="h_u"):
        model.complete(values, observed, h[:, :5])
    with pytest.raises(ValueError, match="unknown task"):
        model.complete(values, observed, h, "weekend")
    with pytest.raises(ValueError, match="sampler"):
        model.complete(values, observed, h, sampler="euler")


def test_training_reduces_loss_and_updates_mask_policy():
    values, observed, h = _data()
    model = _model()
    ids = torch.arange(N) % 3

    def eval_loss() -> float:
        torch.manual_seed(0)
        with torch.no_grad():
            return float(training_loss(model, values, observed, h, ids,
                                       generator=torch.Generator().manual_seed(5)).reconstruction)

    before = eval_loss()
    rho_before = model.umask.ratio.base_ratio().detach().clone()
    hist = fit(model, values, observed, h, TrainConfig(steps=30, batch_size=12, lr=5e-3,
                                                       log_every=15))
    assert len(hist) == 2 and all(np.isfinite(r["loss"]) for r in hist)
    assert eval_loss() < 0.7 * before
    assert not torch.allclose(model.umask.ratio.base_ratio(), rho_before)  # rho_tau learns


def test_save_load_round_trip(tmp_path):
    values, observed, h = _data()
    model = _model(fusion="cross")
    fit(model, values, observed, h, TrainConfig(steps=5, batch_size=8, log_every=5))
    model.set_reference(h[:5])
    path = model.save(tmp_path / "m")
    assert (path / "model.safetensors").is_file()
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["dit"]["fusion"] == "cross" and cfg["umask"]["tasks"][2]["cold"] is True
    loaded = UMaskCompleter.load(path)
    assert loaded.cfg == model.cfg
    assert CompletionConfig.from_dict(model.cfg.to_dict()) == model.cfg
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    a = model.complete(values, observed, h, "cold_start", n_samples=2, steps=4, seed=3)
    b = loaded.complete(values, observed, h, "cold_start", n_samples=2, steps=4, seed=3)
    assert torch.equal(a.samples, b.samples)
    with pytest.raises(FileNotFoundError):
        UMaskCompleter.load(tmp_path / "missing")


def test_fixed_policy_control_uses_fixed_budget():
    values, observed, h = _data()
    model = _model(policy="fixed")
    out = model.complete(values, observed, h, "long_term", n_samples=1, steps=2)
    task = model.cfg.umask.tasks[1]
    expect = min(int(task.init_ratio * T), T - task.horizon)
    assert (out.evidence_mask.sum((1, 2, 3)) == expect).all()


def test_task_masks_split_history_and_target():
    _, observed, _ = _data()
    cfg = _model().cfg.umask
    ids = torch.tensor([0, 1, 2] * (N // 3))
    tm = task_masks(cfg.tasks, ids, observed)
    for i, tid in enumerate(ids.tolist()):
        hz = cfg.tasks[tid].horizon
        assert tm.target[i, T - hz:].all() and tm.target[i, :T - hz].sum() == 0
        assert tm.candidates[i, :T - hz].all() and tm.candidates[i, T - hz:].sum() == 0


def test_baselines():
    values = torch.zeros(1, 1, 6, 1, 1)
    values[0, 0, :, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0, 0.0])
    evidence = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0]).view(1, 6, 1, 1)
    ha = historical_average(values, evidence)
    assert torch.allclose(ha, torch.full_like(values, 2.5))
    sn = seasonal_naive(values, evidence, period=2, fallback=ha)
    assert sn[0, 0, 4, 0, 0] == 3.0 and sn[0, 0, 5, 0, 0] == 4.0     # x(t - 2)
    assert sn[0, 0, 0, 0, 0] == 2.5                                        # no earlier season
    pop = population_mean(torch.stack([values[0], 2 * values[0]]), torch.ones(2, 6, 1, 1))
    assert torch.allclose(pop, 1.5 * values[0])
    no_ev = historical_average(values, torch.zeros_like(evidence), pop)
    assert torch.equal(no_ev[0], pop)
    errs = group_errors(ha, values, 1 - evidence, {"app": [0]})
    assert errs["app"]["rmse"] == pytest.approx(2.5) and errs["app"]["mae"] == pytest.approx(2.5)


def test_compare_scores_models_and_baselines_on_same_targets():
    values, observed, h = _data()
    model = _model()
    res = compare({"U-MASK": model}, values, observed, h, "cold_start", train_values=values,
                  train_scored=observed, groups={"app": [0, 1, 2]}, n_samples=2, steps=3,
                  season=24)
    assert set(res) == {"U-MASK", "historical average", "seasonal naive", "population mean"}
    assert all(res[k]["app"]["rmse"] >= res[k]["app"]["mae"] >= 0 for k in res)


def test_compare_budget_matched_control_reveals_the_adaptive_budget():
    values, observed, h = _data()
    models = {"U-MASK": _model(), "control": _model("fixed")}
    res = compare(models, values, observed, h, "long_term", train_values=values,
                  train_scored=observed, groups={"app": [0, 1, 2]}, n_samples=2, steps=3,
                  season=24, budget_matched=("U-MASK", "control"))
    matched = res["control (matched budget)"]["_evidence_ratio"]["mean"]
    adaptive = res["U-MASK"]["_evidence_ratio"]["mean"]
    # floor(ratio * T) coordinates per user: within one coordinate of the adaptive mean budget
    assert adaptive - 1 / T <= matched <= adaptive
    assert res["control (matched budget)"]["app"]["rmse"] > 0


def test_validation_loss_is_reproducible_and_tracks_weights():
    values, observed, h = _data()
    model = _model()
    a = validation_loss(model, values, observed, h, observed, seed=3)
    assert a == validation_loss(model, values, observed, h, observed, seed=3)   # fixed draws
    with torch.no_grad():
        model.dit.final.linear.bias.add_(0.5)                                    # move the output
    assert validation_loss(model, values, observed, h, observed, seed=3) != a


def test_early_stopping_restores_the_best_validation_step():
    values, observed, h = _data()
    model = _model()
    seen = {}

    def keep(record):   # weights as they were at each validation point
        seen[record["step"]] = {k: v.clone() for k, v in model.state_dict().items()}

    hist = fit(model, values, observed, h,
               TrainConfig(steps=40, batch_size=8, lr=2e-2, log_every=10, val_fraction=0.25,
                           h_noise=0.05), callback=keep)
    losses = {r["step"]: r["val_loss"] for r in hist}
    best = min(losses, key=losses.get)
    assert hist[-1]["best_step"] == best and all(np.isfinite(v) for v in losses.values())
    for k, v in model.state_dict().items():
        assert torch.equal(v, seen[best][k]), k
    rows, val_rows = split_validation(N, 0.25, seed=0)
    assert len(val_rows) == 6 and sorted(torch.cat([rows, val_rows]).tolist()) == list(range(N))
    with pytest.raises(ValueError, match="val_fraction"):
        split_validation(3, 0.5, seed=0)


def _centred_model(*names: str) -> UMaskCompleter:
    model = _model()
    model.cfg.umask.set_centred(list(names))
    return model


def test_evidence_offset_is_the_revealed_mean_and_zero_where_off():
    values, _, _ = _data()
    model = _centred_model("short_term")
    x0 = model.to_model_space(values)
    evidence = torch.zeros(N, T, 1, 1)
    evidence[:, 2:7] = 1
    evidence[0] = 0                                                          # nothing revealed
    offset = model.evidence_offset(x0, evidence, torch.zeros(N, dtype=torch.long))
    assert offset.shape == (N, C, 1, 1, 1)
    assert torch.allclose(offset[1:], x0[1:, :, 2:7].mean(2, keepdim=True))
    assert torch.count_nonzero(offset[0]) == 0
    other = model.evidence_offset(x0, evidence, torch.ones(N, dtype=torch.long))  # long_term
    assert torch.count_nonzero(other) == 0


def test_centred_fresh_model_completes_with_the_evidence_average():
    """adaLN-Zero makes a fresh DiT predict X_0 = 0, i.e. no deviation: every hidden slot is
    completed with the user's mean over the revealed evidence, and evidence returns exactly."""
    values, observed, h = _data()
    model = _centred_model("short_term")
    out = model.complete(values, observed, h, "short_term", n_samples=2, steps=5, seed=0)
    ha = historical_average(values, out.evidence_mask)
    hidden = (out.target_mask.bool() & ~out.evidence_mask.bool())[:, None].expand_as(values)
    assert hidden.any()
    assert torch.allclose(out.median[hidden], ha[hidden].clamp(0, 1), atol=1e-6)
    ev = out.evidence_mask.bool()[:, None].expand_as(values)
    assert torch.equal(out.median[ev], values[ev])
    plain = _model().complete(values, observed, h, "short_term", n_samples=2, steps=5, seed=0)
    assert not torch.allclose(plain.median[hidden], ha[hidden], atol=1e-3)   # uncentred: 0.5


def test_centred_training_runs_and_the_flag_round_trips(tmp_path):
    values, observed, h = _data()
    model = _centred_model("short_term", "long_term")
    history = fit(model, values, observed, h, TrainConfig(steps=6, batch_size=8, log_every=3))
    assert all(np.isfinite(r["loss"]) for r in history)
    loaded = UMaskCompleter.load(model.save(tmp_path / "centred"))
    assert [t.centre for t in loaded.cfg.umask.tasks] == [True, True, False]
    with pytest.raises(ValueError, match="unknown task 'weekly'"):
        model.cfg.umask.set_centred(["weekly"])


def test_evidence_offset_passes_gradient_to_the_mask():
    """In training the offset is taken from the straight-through mask, so the budget predictor
    sees what revealing less costs the level estimate."""
    values, observed, h = _data()
    model = _centred_model("short_term")
    x0 = model.to_model_space(values)
    tid = torch.zeros(N, dtype=torch.long)
    tm = task_masks(model.cfg.umask.tasks, tid, observed)
    m = model.masks(h, tid, tm.candidates, stochastic=True,
                    generator=torch.Generator().manual_seed(0))
    assert torch.allclose(m.relaxed, m.hard, atol=1e-6)                      # same forward value
    offset = model.evidence_offset(x0, m.relaxed, tid)
    assert torch.allclose(offset, model.evidence_offset(x0, m.hard, tid), atol=1e-6)
    ratio_params = list(model.umask.ratio.parameters())
    grads = torch.autograd.grad(offset.pow(2).sum(), ratio_params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_relevance_weighted_offset_follows_the_weighted_mask(tmp_path):
    """centre_weighting="relevance": the level is the mean weighted by M' = I p (eq. 17), it
    moves with the temporal profile phi (eq. 14) through the gradient, and for the fixed-mask
    control (M' = I) it is the plain mean."""
    values, observed, h = _data()
    model = _centred_model("short_term")
    model.cfg.umask.centre_weighting = "relevance"
    x0 = model.to_model_space(values)
    tid = torch.zeros(N, dtype=torch.long)
    tm = task_masks(model.cfg.umask.tasks, tid, observed)
    m = model.masks(h, tid, tm.candidates, stochastic=True,
                    generator=torch.Generator().manual_seed(0))
    offset = model.evidence_offset(x0, m.relaxed, tid, m.weighted)
    w = (m.hard * m.relevance).unsqueeze(1)
    expect = (x0 * w).sum(2, keepdim=True) / w.sum(2, keepdim=True)
    assert torch.allclose(offset, expect, atol=1e-5)
    uniform = model.evidence_offset(x0, m.relaxed, tid)                      # no weights given
    assert not torch.allclose(offset, uniform, atol=1e-4)
    (grad,) = torch.autograd.grad(offset.pow(2).sum(), model.umask.relevance.temporal_logit)
    assert grad[0].abs().sum() > 0
    control = _centred_model("short_term")
    control.cfg.mask_policy = "fixed"
    control.cfg.umask.centre_weighting = "relevance"
    mc = control.masks(h, tid, tm.candidates, stochastic=True,
                       generator=torch.Generator().manual_seed(0))
    assert torch.allclose(control.evidence_offset(x0, mc.hard, tid, mc.weighted),
                          control.evidence_offset(x0, mc.hard, tid), atol=1e-6)
    loaded = UMaskCompleter.load(model.save(tmp_path / "rel"))
    assert loaded.cfg.umask.centre_weighting == "relevance"


def test_weight_average_update_and_swap():
    layer = torch.nn.Linear(3, 2)
    start = {n: p.detach().clone() for n, p in layer.named_parameters()}
    ema = WeightAverage(layer, decay=0.9)
    with torch.no_grad():
        layer.weight.add_(1.0)
    ema.update(layer)
    d = min(0.9, 2 / 11)                                   # warm-up: (1 + n) / (10 + n), n = 1
    assert torch.allclose(ema.shadow["weight"], d * start["weight"] + (1 - d) * layer.weight)
    live = layer.weight.detach().clone()
    with ema.applied(layer):
        assert torch.equal(layer.weight, ema.shadow["weight"])
    assert torch.equal(layer.weight, live)                  # live weights restored
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(layer, decay=1.0)


def test_early_stopping_with_ema_keeps_the_validated_average():
    """With ema_decay the averaged weights are validated and kept: the final model reproduces
    the best recorded validation loss, and differs from the live weights of that step."""
    values, observed, h = _data()
    model = _model()
    seen = {}

    def keep(record):
        seen[record["step"]] = {k: v.clone() for k, v in model.state_dict().items()}

    cfg = TrainConfig(steps=30, batch_size=8, lr=2e-2, log_every=10, val_fraction=0.25,
                      ema_decay=0.9)
    hist = fit(model, values, observed, h, cfg, callback=keep)
    best = hist[-1]["best_step"]
    best_loss = next(r["val_loss"] for r in hist if r["step"] == best)
    _, val = split_validation(N, cfg.val_fraction, cfg.seed)
    again = validation_loss(model, values[val], observed[val], h[val], observed[val],
                            repeats=cfg.val_repeats, seed=cfg.seed)
    assert again == pytest.approx(best_loss, rel=1e-5)
    assert not torch.equal(model.dit.final.linear.weight, seen[best]["dit.final.linear.weight"])


def test_fit_without_validation_ends_with_the_weight_average():
    values, observed, h = _data()
    model = _model()
    name = "dit.final.linear.weight"
    trajectory = [model.state_dict()[name].clone()]

    def keep(record):   # without validation the callback sees the live weights of every step
        trajectory.append(model.state_dict()[name].clone())

    fit(model, values, observed, h, TrainConfig(steps=6, batch_size=8, lr=2e-2, log_every=1,
                                                ema_decay=0.5), callback=keep)
    expect = trajectory[0]
    for n, live in enumerate(trajectory[1:], start=1):
        d = min(0.5, (1 + n) / (10 + n))
        expect = d * expect + (1 - d) * live
    assert torch.allclose(model.state_dict()[name], expect, atol=1e-6)
    assert not torch.allclose(expect, trajectory[-1], atol=1e-6)


def test_centred_completion_clips_in_data_space():
    """A centred DiT that predicts a deviation of +1.5 everywhere completes each hidden slot
    with min(1, level + 1.5) in model space: the clip bounds the data, not the deviation."""
    values, observed, h = _data()
    model = _centred_model("short_term")
    with torch.no_grad():
        model.dit.final.linear.bias.fill_(1.5)
    out = model.complete(values, observed, h, "short_term", n_samples=1, steps=1, seed=0)
    ha = historical_average(values, out.evidence_mask)                      # data-space level
    level = model.to_model_space(ha)
    expect = model.to_data_space((level + 1.5).clamp(-1.0, 1.0))
    hidden = (out.target_mask.bool() & ~out.evidence_mask.bool())[:, None].expand_as(values)
    assert torch.allclose(out.median[hidden], expect[hidden], atol=1e-5)
    assert (expect[hidden] > model.to_data_space(level + 1.0)[hidden] + 0.1).any()


def test_evidence_offset_falls_back_to_the_users_level_in_cells_without_evidence():
    """With several location cells the level is per cell; a cell with no revealed slot takes
    the user's level over all revealed coordinates (not 0, the middle of the data range)."""
    torch.manual_seed(0)
    model = UMaskCompleter(DIT_PRESETS["umask-tiny"](channels=2, n_slots=T, height=1, width=3,
                                                     patch=(1, 1, 1), user_dim=D_USER))
    model.cfg.umask.set_centred(["cold_start"])
    x0 = torch.rand(2, 2, T, 1, 3) * 2 - 1
    evidence = torch.zeros(2, T, 1, 3)
    evidence[0, :3, 0, 0] = 1                                    # user 0: cell 0 only
    evidence[0, 5, 0, 1] = 1                                     #         and one slot of cell 1
    cold = torch.full((2,), model.cfg.umask.task_index("cold_start"), dtype=torch.long)
    offset = model.evidence_offset(x0, evidence, cold)           # user 1: nothing revealed
    assert torch.allclose(offset[0, :, 0, 0, 0], x0[0, :, :3, 0, 0].mean(-1))
    assert torch.allclose(offset[0, :, 0, 0, 1], x0[0, :, 5, 0, 1])
    pooled = (x0[0, :, :3, 0, 0].sum(-1) + x0[0, :, 5, 0, 1]) / 4
    assert torch.allclose(offset[0, :, 0, 0, 2], pooled)         # no evidence in cell 2
    assert torch.count_nonzero(offset[1]) == 0
