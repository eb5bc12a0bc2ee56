"""CRPS and interval coverage of sampled completions (generative.uncertainty), and the PyPOTS
anchors of the U-MASK tables on behaviour tensors (benchmarks/umask_anchors.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from generative.evaluate import group_errors
from generative.uncertainty import as_samples, sample_scores

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

GROUPS = {"all": [0, 1]}


def _truth_and_target(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    truth = torch.rand(4, 2, 6, 2, 1, generator=gen)
    target = torch.zeros(4, 6, 2, 1)
    target[:, 3:] = 1.0                                   # the last 3 slots are the target
    return truth, target, gen


def test_crps_of_one_sample_is_its_mae_and_zero_for_the_truth():
    truth, target, gen = _truth_and_target()
    point = truth + 0.1 * torch.randn(truth.shape, generator=gen)
    crps = sample_scores(as_samples(point), truth, target, GROUPS)["all"]["crps"]
    assert crps == pytest.approx(group_errors(point, truth, target, GROUPS)["all"]["mae"])
    exact = sample_scores(truth.expand(5, *truth.shape), truth, target, GROUPS)["all"]
    assert exact["crps"] == pytest.approx(0.0) and exact["cover90"] == 1.0


def test_coverage_is_nominal_for_samples_from_the_truths_distribution():
    """Targets and 200 samples i.i.d. from one distribution: the central 50% and 90% sample
    intervals hold about 50% and 90% of the targets; a shifted ensemble holds fewer, and a
    sharper correct ensemble has a lower CRPS than a wider one (a proper score)."""
    gen = torch.Generator().manual_seed(1)
    truth = torch.randn(40, 2, 20, 1, 1, generator=gen)
    target = torch.ones(40, 20, 1, 1)
    samples = torch.randn(200, *truth.shape, generator=gen)
    calibrated = sample_scores(samples, truth, target, GROUPS)["all"]
    assert calibrated["cover50"] == pytest.approx(0.5, abs=0.05)
    assert calibrated["cover90"] == pytest.approx(0.9, abs=0.04)
    shifted = sample_scores(samples + 1.5, truth, target, GROUPS)["all"]
    assert shifted["cover90"] < 0.7 and shifted["crps"] > calibrated["crps"]
    wide = sample_scores(3 * samples, truth, target, GROUPS)["all"]
    assert wide["cover50"] > 0.85 and wide["crps"] > calibrated["crps"]


def test_each_group_is_scored_on_its_own_channels():
    truth, target, _ = _truth_and_target()
    off = truth.clone()
    off[:, 1] += 0.5                                      # channel 1 only is wrong by 0.5
    scores = sample_scores(as_samples(off), truth, target, {"first": [0], "second": [1]})
    assert scores["first"]["crps"] == 0.0
    assert scores["second"]["crps"] == pytest.approx(0.5)


def test_compare_scores_the_spread_of_samples_drawn_from_the_point_pass_evidence():
    """compare(uncertainty=(steps, n)): U-MASK's CRPS and coverage come from n DDIM samples
    completed from the same (adaptive, relevance-weighted) evidence as its point forecast."""
    from generative.completion import UMaskCompleter
    from generative.config import DIT_PRESETS
    from generative.evaluate import compare
    from generative.tasks import task_masks

    gen = torch.Generator().manual_seed(0)
    values = torch.rand(6, 2, 12, 1, 1, generator=gen) ** 3
    observed = torch.ones(6, 12, 1, 1)
    h = torch.randn(6, 384, generator=gen)
    torch.manual_seed(0)
    model = UMaskCompleter(DIT_PRESETS["umask-tiny"](channels=2, n_slots=12))
    res = compare({"U-MASK": model}, values, observed, h, "long_term", train_values=values,
                  train_scored=observed, groups=GROUPS, n_samples=2, steps=1, seed=3,
                  uncertainty=(4, 5))
    spread = model.complete(values, observed, h, "long_term", n_samples=5, steps=4, seed=3)
    tid = model.cfg.umask.task_index("long_term")
    target = task_masks(model.cfg.umask.tasks, torch.full((6,), tid), observed).target
    expected = sample_scores(spread.samples, values, target, GROUPS)["all"]
    assert res["U-MASK"]["all"]["crps"] == pytest.approx(expected["crps"])
    assert res["U-MASK"]["all"]["cover90"] == pytest.approx(expected["cover90"])


def test_scores_only_the_target_coordinates():
    truth, target, _ = _truth_and_target()
    wrong_outside = truth.clone()
    wrong_outside[:, :, :3] += 5.0                        # errors only outside the target
    assert sample_scores(as_samples(wrong_outside), truth, target, GROUPS)["all"]["crps"] == 0.0


def test_series_round_trip_hides_what_the_evidence_does_not_reveal():
    from umask_anchors import from_series, to_series

    truth = torch.rand(4, 2, 6, 2, 3, generator=torch.Generator().manual_seed(0))
    keep = torch.ones(4, 6, 2, 3)
    keep[:, 3:] = 0.0                                     # the last 3 slots are hidden
    keep[0, 0, 1, 2] = 0.0                                # and one cell of user 0's slot 0
    series = to_series(truth, keep)                       # (N, T, C*H*W)
    assert series.shape == (4, 6, 12)
    assert np.isnan(series[:, 3:]).all() and not np.isnan(series[1:, :3]).any()
    # feature order is (channel, row, column): both channels of cell (1, 2) are hidden
    assert np.isnan(series[0, 0]).sum() == 2
    assert np.isnan(series[0, 0, [5, 11]]).all()
    assert series[0, 1, 7] == pytest.approx(float(truth[0, 1, 1, 0, 1]))
    back = from_series(np.nan_to_num(to_series(truth)), truth.shape[1:])
    assert torch.allclose(back, truth)


@pytest.mark.slow
def test_saits_anchor_completes_from_the_evidence_it_is_given():
    """A real PyPOTS SAITS, one epoch: it returns the revealed evidence unchanged and fills
    the hidden target window with values in the data range."""
    from umask_anchors import anchor_samples, fit_anchor

    gen = torch.Generator().manual_seed(0)
    values = (torch.rand(24, 2, 16, 1, 2, generator=gen) < 0.3).float()
    observed = torch.ones(24, 16, 1, 2)
    keep = observed.clone()
    keep[:, 12:] = 0.0
    model, seconds = fit_anchor("SAITS", values, observed, keep, seed=0, epochs=1)
    assert seconds > 0
    out = anchor_samples("SAITS", model, values[:5], keep[:5], n_samples=3)
    assert out.shape == (1, 5, 2, 16, 1, 2)               # a point anchor: one sample
    assert torch.equal(out[0, :, :, :12], values[:5, :, :12])
    assert out.min() >= 0.0 and out.max() <= 1.0
