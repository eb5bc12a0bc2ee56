"""Features of H_u (eq. 21) behind the prompt x_u: pi_time, C_u, sigma_u; cold start; budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uscope.data.schema import DataError, validate_events
from uscope.profile.features import (
    NO_LOCATION,
    FeatureConfig,
    user_features,
    user_slices,
)
from uscope.profile.population import iter_features


def events(rows):
    """Event table from (user, timestamp, app, category, place) tuples."""
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "app", "app_category",
                                        "location_category"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return validate_events(frame, source="<test>")


@pytest.fixture
def commuter():
    # Two identical weekdays (Mon, Tue) and one Saturday; home in the morning, office at noon.
    rows = []
    for day in ("2024-01-01", "2024-01-02"):
        rows += [("u", f"{day} 08:00", "WeChat", "Social", "Residence"),
                 ("u", f"{day} 08:10", "News", "News", "Residence"),
                 ("u", f"{day} 12:00", "WeChat", "Social", "Office")]
    rows += [("u", "2024-01-06 21:00", "Game", "Games", None)]
    return events(rows)


def test_pi_time_is_a_distribution_over_weekday_hour(commuter):
    f = user_features("u", commuter)
    assert f.pi_time.shape == (7, 24)
    assert f.pi_time.sum() == pytest.approx(1.0)
    assert f.pi_time[0, 8] == pytest.approx(2 / 7)  # Monday 08:xx: two of seven events
    assert f.pi_time[5, 21] == pytest.approx(1 / 7)  # Saturday 21:00
    assert f.peak_hours(2) == [8, 12]


def test_cooccurrence_counts_every_used_event_once(commuter):
    f = user_features("u", commuter)
    assert f.C_u.shape == (len(f.locations), len(f.app_categories))
    assert f.C_u.sum() == f.n_used == 7
    assert f.locations[0] == "Residence" and f.app_categories[0] == "Social"  # sorted by total
    c = dict(zip(f.app_categories, f.C_u.sum(axis=0)))
    assert c == {"Social": 4, "News": 2, "Games": 1}
    loc = dict(zip(f.locations, f.C_u.sum(axis=1)))
    assert loc == {"Residence": 4, "Office": 2, NO_LOCATION: 1}
    office = f.C_u[f.locations.index("Office")]
    assert office[f.app_categories.index("Social")] == 2
    # The unrecorded place is a row of C_u but never a named top place.
    assert [p for p, _ in f.top_places] == ["Residence", "Office"]
    assert f.top_places[0][1] == pytest.approx(4 / 7)
    assert f.location_recorded


def test_session_regularity(commuter):
    s = user_features("u", commuter, FeatureConfig(session_gap_minutes=30)).sigma
    # Sessions: Mon 08:00-08:10, Mon 12:00, Tue 08:00-08:10, Tue 12:00, Sat 21:00.
    assert s.n_sessions == 5
    assert s.active_days == 3
    assert s.sessions_per_day == pytest.approx(5 / 3)
    assert s.mean_session_minutes == pytest.approx(4.0)  # (10 + 0 + 10 + 0 + 0) / 5
    assert 0.0 <= s.hour_entropy <= 1.0
    # Mon and Tue have the same hour profile (cos 1); Tue vs Sat share no hour (cos 0).
    assert s.routine_consistency == pytest.approx(0.5)
    # A longer gap threshold merges Mon 08:10 and 12:00 (230 min apart) into one session.
    assert user_features("u", commuter, FeatureConfig(session_gap_minutes=240)).sigma.n_sessions == 3


def test_identical_days_have_full_routine_consistency():
    rows = [("u", f"2024-03-0{d} {h:02d}:00", "A", "Tools", None) for d in (4, 5, 6) for h in (7, 19)]
    s = user_features("u", events(rows)).sigma
    assert s.routine_consistency == pytest.approx(1.0)
    single_day = user_features("u", events(rows[:2])).sigma
    assert single_day.routine_consistency is None


@pytest.mark.parametrize("n", [0, 1])
def test_cold_start_users_get_valid_sparse_features(n):
    table = events([("u", "2024-01-01 09:30", "Maps", "Navigation", "Park")][:n]) if n else \
        validate_events(pd.DataFrame({"user_id": [], "timestamp": [], "app": [],
                                      "app_category": []}))
    (f,) = list(iter_features(table, ["u"]))
    assert f.cold_start and f.n_events == n and f.n_used == n
    assert f.C_u.sum() == n and f.pi_time.sum() == pytest.approx(float(n))
    assert f.sigma.n_sessions == n
    assert f.sigma.median_gap_minutes is None and f.sigma.routine_consistency is None
    if n == 0:
        assert f.first_seen is None and f.top_apps == [] and f.category_shares == {}
    else:
        assert f.top_categories == [("Navigation", 1.0)] and f.top_places == [("Park", 1.0)]


def test_users_with_only_unknown_apps():
    rows = [("u", "2024-01-01 10:00", "app_17", "Unknown", None),
            ("u", "2024-01-01 11:00", "app_99", "Unknown", None)]
    f = user_features("u", events(rows))
    assert f.unknown_share == 1.0
    assert f.top_categories == []  # Unknown is never named as an interest
    assert f.category_shares == {"Unknown": 1.0}
    assert [a for a, _ in f.top_apps] == ["app_17", "app_99"]
    assert not f.location_recorded


def test_enormous_history_is_cut_to_the_budget_and_says_so():
    stamps = pd.date_range("2024-01-01", periods=5000, freq="min")
    table = validate_events(pd.DataFrame({
        "user_id": "heavy", "timestamp": stamps, "app": ["Old"] * 4000 + ["New"] * 1000,
        "app_category": ["Games"] * 4000 + ["Video"] * 1000,
    }))
    f = user_features("heavy", table, FeatureConfig(max_events=1000))
    assert f.truncated and f.n_events == 5000 and f.n_used == 1000 and f.budget == 1000
    assert f.C_u.sum() == 1000
    assert f.top_apps == [("New", 1000)]  # the most recent events are the ones kept
    assert f.last_seen == stamps[-1]
    assert not user_features("heavy", table, FeatureConfig(max_events=5000)).truncated


def test_user_slices_cover_the_table_and_require_sorting(commuter):
    table = pd.concat([commuter.assign(user_id="b"), commuter.assign(user_id="a")],
                      ignore_index=True)
    with pytest.raises(DataError, match="not sorted"):
        user_slices(table)
    table = validate_events(table)
    spans = user_slices(table)
    assert sorted(spans) == ["a", "b"]
    assert sum(s.stop - s.start for s in spans.values()) == len(table)
    assert np.all(table.iloc[spans["b"]]["user_id"] == "b")


def test_bad_feature_config():
    with pytest.raises(ValueError, match="max_events"):
        FeatureConfig(max_events=0)
