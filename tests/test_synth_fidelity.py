"""Fidelity of eq. 26 (usage distribution, MAE/RMSE/R^2/Pearson) and the Fig. 5 PNGs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from uscope.data import DataError
from uscope.synth.fidelity import agreement, cramers_v, fidelity, usage_distribution
from uscope.synth.figures import plot_difference_heatmap, plot_scatter


def _events(rows):
    return pd.DataFrame([{"user_id": "u", "timestamp": pd.Timestamp("2016-04-20 08:00"),
                          "app": a, "app_category": a, "location_id": loc,
                          "location_category": loc} for a, loc in rows])


def test_usage_distribution_rows_are_shares_per_location(simulated):
    dist = usage_distribution(simulated.events)
    assert np.allclose(dist.sum(axis=1), 1.0)
    counts = pd.crosstab(simulated.events["location_category"], simulated.events["app_category"])
    row = counts.index[0]
    assert np.allclose(dist.loc[row].to_numpy(), (counts.loc[row] / counts.loc[row].sum()))
    joint = usage_distribution(simulated.events, normalise="joint")
    assert joint.to_numpy().sum() == pytest.approx(1.0)


def test_identical_data_is_perfectly_faithful(simulated):
    result = fidelity(simulated.events, simulated.events)
    assert result.mae == 0 and result.rmse == 0
    assert result.r2 == pytest.approx(1.0) and result.pearson_r == pytest.approx(1.0)
    assert result.association_real == pytest.approx(result.association_generated)
    assert result.rows_missing == []


def test_agreement_matches_independent_formulas():
    rng = np.random.default_rng(0)
    real = rng.random(40)
    generated = real + rng.normal(0, 0.05, 40)
    scores = agreement(real, generated)
    err = generated - real
    assert scores["mae"] == pytest.approx(np.abs(err).mean())
    assert scores["rmse"] == pytest.approx(np.sqrt((err ** 2).mean()))
    assert scores["r2"] == pytest.approx(1 - (err ** 2).sum() / ((real - real.mean()) ** 2).sum())
    reference = pearsonr(real, generated)
    assert scores["pearson_r"] == pytest.approx(reference.statistic)
    assert scores["p_value"] == pytest.approx(reference.pvalue)
    assert scores["mae"] <= scores["rmse"]


def test_a_shifted_generation_is_scored_on_aligned_cells():
    real = _events([("Games", "Home")] * 3 + [("News", "Home")] + [("News", "Office")] * 2)
    generated = _events([("Games", "Home")] * 2 + [("News", "Home")] * 2 + [("Maps", "Office")])
    result = fidelity(real, generated)
    assert list(result.real.columns) == ["Games", "Maps", "News"]
    # Home: real (0.75, 0, 0.25) vs generated (0.5, 0, 0.5); Office: (0, 0, 1) vs (0, 1, 0)
    diff = result.difference().to_numpy()
    assert np.allclose(diff, [[-0.25, 0, 0.25], [0, 1, -1]])
    assert result.mae == pytest.approx(np.abs(diff).mean())


def test_places_never_generated_are_reported_not_scored():
    real = _events([("Games", "Home"), ("News", "Office"), ("News", "Park")])
    generated = _events([("Games", "Home"), ("News", "Office")])
    result = fidelity(real, generated)
    assert result.rows_missing == ["Park"]
    assert list(result.real.index) == ["Home", "Office"]


def test_cramers_v_spans_independence_to_determinism():
    determined = _events([("Games", "Home"), ("News", "Office")] * 5)
    independent = _events([(a, loc) for a in ("Games", "News") for loc in ("Home", "Office")] * 5)
    assert cramers_v(determined) == pytest.approx(1.0)
    assert cramers_v(independent) == pytest.approx(0.0)


def test_fidelity_needs_places(netfp_events):
    events, _ = netfp_events
    with pytest.raises(DataError, match="location_category"):
        fidelity(events.head(50), events.head(50))


def test_figures_are_written_as_png(tmp_path, simulated):
    events = simulated.events
    half = events[events["user_id"].isin(events["user_id"].unique()[:7])]
    result = fidelity(events, half)
    for plot, name in ((plot_difference_heatmap, "fig5a.png"), (plot_scatter, "fig5b.png")):
        path = plot(result, tmp_path / name, "SIMULATED population (test)")
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def _visits(rows):
    """Place check-ins (no app) at the given hours."""
    return pd.DataFrame([{"user_id": "u", "timestamp": pd.Timestamp("2012-04-20") +
                          pd.Timedelta(hours=h), "app": None, "app_category": None,
                          "location_id": loc, "location_category": loc} for h, loc in rows])


def test_place_by_hour_distribution_counts_each_category_s_hours():
    visits = _visits([(1, "Bar"), (2, "Bar"), (23, "Bar"), (8, "Work"), (9, "Work"),
                      (13, "Food")])
    dist = usage_distribution(visits, against="hour", hour_bin=6)
    assert list(dist.columns) == ["00-06h", "06-12h", "12-18h", "18-24h"]
    assert dist.loc["Bar"].tolist() == pytest.approx([2 / 3, 0, 0, 1 / 3])
    assert dist.loc["Work", "06-12h"] == 1 and dist.loc["Food", "12-18h"] == 1
    same = fidelity(visits, visits, against="hour", hour_bin=6)
    assert same.mae == 0 and same.against == "hour"
    # every visit moved to noon: Bar and Work lose all their mass in their own bins
    noon = visits.assign(timestamp=pd.Timestamp("2012-04-20 12:30"))
    moved = fidelity(visits, noon, against="hour", hour_bin=6)
    assert moved.generated.loc["Bar", "12-18h"] == 1 and moved.mae > 0
    assert cramers_v(visits, against="hour", hour_bin=6) > cramers_v(noon, against="hour",
                                                                        hour_bin=6)


def test_place_check_ins_have_no_app_axis_and_bins_must_divide_the_day():
    visits = _visits([(1, "Bar"), (8, "Work")])
    with pytest.raises(DataError, match="against='hour'") as info:
        fidelity(visits, visits)
    assert info.value.field == "app"
    with pytest.raises(ValueError, match="hour_bin must divide 24"):
        usage_distribution(visits, against="hour", hour_bin=5)
    with pytest.raises(ValueError, match="against must be one of"):
        usage_distribution(visits, against="weekday")


def test_hour_axis_of_a_table_with_apps_counts_app_uses_only():
    """Raw StudentLife-like rows: GPS fixes without an app are not what synthesis generates."""
    uses = _visits([(8, "Home"), (9, "Home")]).assign(app="mail", app_category="Mail")
    fixes = _visits([(20, "Home"), (21, "Home"), (22, "Home")])
    dist = usage_distribution(pd.concat([uses, fixes]), against="hour", hour_bin=12)
    assert dist.loc["Home"].to_dict() == {"00-12h": 1.0}
    untimed = uses.assign(timestamp=pd.NaT)
    with pytest.raises(DataError, match="needs event times") as info:
        usage_distribution(untimed, against="hour")
    assert info.value.field == "timestamp"
