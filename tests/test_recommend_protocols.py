"""Evaluation protocols (uscope.recommend.protocols) and the beyond-accuracy metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from uscope.data import DataError, novelty_split, validate_events
from uscope.data.items import item_column, used_items
from uscope.data.splits import SyntheticInEvaluation, cutoff_time
from uscope.recommend.metrics import coverage, mean_popularity, paired_bootstrap, ranking_metrics
from uscope.recommend.protocols import (
    apps_from_locations_split,
    cold_user_split,
    later_weeks_split,
    leave_out_split,
    location_only,
    novelty_split_protocol,
    query_context,
    split_users,
)

DAYTIMES = ("morning", "noon", "evening")


def assert_targets_hidden(split, column: str) -> None:
    """No target is among the evaluated user's visible items; every user has a target."""
    assert split.targets and all(split.targets.values())
    for user, items in split.targets.items():
        mine = split.visible[split.visible["user_id"] == user]
        assert not used_items(mine, split.kind, column) & items, user
    assert set(split.contexts) == set(split.targets)


@pytest.fixture(scope="module")
def untimed():
    """Frappe-like: no times, context buckets; user k uses apps a0..a{n_k - 1}, twice each."""
    sizes = {"u0": 1, "u1": 2, "u2": 5, "u3": 10, "u4": 10, "u5": 7}
    rows = []
    for user, n in sizes.items():
        for i in range(n):
            for j in range(2):
                rows.append((user, None, f"a{i}", "Tools", 1 + i,
                             f"daytime={DAYTIMES[(i + j) % 3]};weekday=monday;homework=home"))
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "app", "app_category", "uses",
                                        "context"])
    return validate_events(frame)


@pytest.fixture(scope="module")
def weekly():
    """Check-ins over calendar weeks from Monday 2024-01-01; venue v{week} is new each week."""
    rows = []
    plan = {"w0": range(10), "w1": [0, 1, 5, 6], "w2": [0, 1], "w3": range(6)}
    for user, weeks in plan.items():
        for week in weeks:
            day = pd.Timestamp("2024-01-01") + pd.Timedelta(days=7 * week + week % 7)
            for venue in ("home", f"v{week}"):
                rows.append((user, day + pd.Timedelta(hours=9 + len(venue)), venue,
                             "Food" if venue == "home" else f"Cat{week % 3}"))
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "location_id",
                                        "location_category"])
    return validate_events(frame)


@pytest.fixture(scope="module")
def apps_and_places():
    rows = []
    for u in range(10):
        for h in range(12):
            rows.append((f"p{u}", f"2024-01-01 {h + 6:02d}:00", f"app{(u + h) % 8}",
                         "Social", f"cell{h % 3}", "Office", 100))
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "app", "app_category",
                                        "location_id", "location_category", "traffic_bytes"])
    return validate_events(frame)


def test_split_users_disjoint_covering_stable():
    users = [f"u{i}" for i in range(11)]
    validation, test = split_users(reversed(users), 0.5, seed=3)
    assert not set(validation) & set(test) and set(validation) | set(test) == set(users)
    assert len(validation) == 6 and validation == sorted(validation)
    assert split_users(users, 0.5, seed=3) == (validation, test)  # input order is irrelevant
    assert split_users(users, 0.5, seed=4) != (validation, test)
    assert split_users(users, 0.0)[0] == [] and split_users(users, 1.0)[1] == []


def test_leave_out_hides_a_fifth_and_keeps_one(untimed):
    split = leave_out_split(untimed, "app", fraction=0.2, seed=0)
    assert_targets_hidden(split, "app")
    assert split.name == "leave-out" and sorted(split.targets) == ["u1", "u2", "u3", "u4", "u5"]
    expected = {"u1": 1, "u2": 1, "u3": 2, "u4": 2, "u5": 1}  # round(0.2 n), >= 1, keep >= 1
    assert {u: len(t) for u, t in split.targets.items()} == expected
    for user, items in split.targets.items():
        before = untimed[untimed["user_id"] == user]
        after = split.visible[split.visible["user_id"] == user]
        assert len(after) == len(before) - 2 * len(items)  # every row of a hidden item left
        assert used_items(after, "app") == used_items(before, "app") - items
    assert (split.visible["user_id"] == "u0").sum() == 2  # one item: not evaluated, all kept
    assert split.contexts["u3"]["weekday"] == "monday" and "hour" not in split.contexts["u3"]
    # deterministic with the seed, different for another seed, independent of who is evaluated
    assert leave_out_split(untimed, "app", 0.2, seed=0).targets == split.targets
    others = [leave_out_split(untimed, "app", 0.2, seed=s).targets for s in range(1, 6)]
    assert any(t != split.targets for t in others)
    alone = leave_out_split(untimed, "app", 0.2, seed=0, users=["u3"])
    assert alone.targets == {"u3": split.targets["u3"]}
    rest = untimed[untimed["user_id"] != "u3"]
    pd.testing.assert_frame_equal(
        alone.visible[alone.visible["user_id"] != "u3"].reset_index(drop=True),
        rest.reset_index(drop=True))  # users not evaluated stay completely visible


@pytest.mark.parametrize("n", [1, 3, 5])
def test_cold_users_keep_exactly_n_items(untimed, n):
    split = cold_user_split(untimed, "app", max_known=n, seed=0)
    assert_targets_hidden(split, "app")
    assert split.name == f"cold-{n}"
    for user, items in split.targets.items():
        allowed = used_items(untimed[untimed["user_id"] == user], "app")
        kept = used_items(split.visible[split.visible["user_id"] == user], "app")
        assert len(allowed) > n and len(kept) == n and kept | items == allowed
    small = [u for u in untimed["user_id"].unique()
             if untimed.loc[untimed["user_id"] == u, "app"].nunique() <= n]
    assert not set(small) & set(split.targets)
    assert cold_user_split(untimed, "app", n, seed=0).targets == split.targets


def test_later_weeks_drops_the_future_and_targets_new_items(weekly):
    split = later_weeks_split(weekly, "place", history_fraction=0.7, min_history_weeks=2)
    assert_targets_hidden(split, "location_id")
    # w0: 10 weeks -> 7 of history; w1: active weeks 0, 1, 5, 6 -> 2; w3: 6 -> 4; w2 too short
    history = {"w0": 7, "w1": 2, "w3": 4}
    assert set(split.targets) == set(history)
    for user, weeks in history.items():
        mine = weekly[weekly["user_id"] == user]
        active = sorted((mine["timestamp"].dt.normalize()
                         - pd.to_timedelta(mine["timestamp"].dt.dayofweek, unit="D")).unique())
        seen = split.visible[split.visible["user_id"] == user]
        assert seen["timestamp"].max() < active[weeks]  # nothing after the history weeks
        assert len(seen) == 2 * weeks
        later = mine[mine["timestamp"] >= active[weeks]]
        assert split.targets[user] == set(later["location_id"]) - {"home"}
        assert split.contexts[user]["weekday"] and "hour" in split.contexts[user]
    pd.testing.assert_frame_equal(  # too few weeks: not evaluated, history (all) visible
        split.visible[split.visible["user_id"] == "w2"].reset_index(drop=True),
        weekly[weekly["user_id"] == "w2"].reset_index(drop=True))
    places = later_weeks_split(weekly, "location")
    assert_targets_hidden(places, "location_category")
    assert all("location" not in c for c in places.contexts.values())  # no target in context


def test_time_protocols_refuse_untimed_data(untimed):
    for protocol in (lambda: later_weeks_split(untimed, "app"),
                     lambda: novelty_split_protocol(untimed, "app")):
        with pytest.raises(DataError, match="timestamp") as err:
            protocol()
        assert err.value.field == "timestamp"


def test_novelty_protocol_wraps_novelty_split(weekly):
    split = novelty_split_protocol(weekly, "place", cutoff=0.5, users=["w0", "w3"])
    history, targets = novelty_split(weekly, "place", cutoff_time(weekly, 0.5))
    assert split.targets == {u: t for u, t in targets.items() if u in ("w0", "w3")}
    pd.testing.assert_frame_equal(split.visible, history)
    assert_targets_hidden(split, "location_id")


def test_apps_from_locations_matches_the_coldstart_protocol(apps_and_places):
    split = apps_from_locations_split(apps_and_places, seed=1, holdout_fraction=0.3,
                                      n_targets=3)
    everyone = sorted(apps_and_places["user_id"].unique())
    held = set(np.random.default_rng(1).choice(everyone, size=3, replace=False).tolist())
    assert set(split.targets) == held and split.kind == "app"
    assert all(len(t) == 3 for t in split.targets.values())
    assert_targets_hidden(split, "app")
    seen = split.visible[split.visible["user_id"].isin(held)]
    assert seen["app"].isna().all() and len(seen) == 12 * 3  # places and times kept
    assert split.contexts[min(held)]["location"] == "Office"
    with pytest.raises(DataError) as err:
        apps_from_locations_split(location_only(apps_and_places))
    assert err.value.field == "app"


def test_synthetic_and_missing_items_are_refused(untimed, weekly):
    with pytest.raises(SyntheticInEvaluation):
        leave_out_split(untimed.assign(synthetic=True))
    with pytest.raises(DataError) as err:
        cold_user_split(weekly, "app")
    assert err.value.field == "app"


def test_query_context_takes_the_most_common_bucket():
    rows = validate_events(pd.DataFrame({
        "user_id": ["x"] * 3, "timestamp": [None] * 3, "app": ["a", "b", "c"],
        "uses": [1, 1, 5], "context": ["daytime=noon;homework=unknown",
                                       "daytime=noon;homework=unknown",
                                       "daytime=night;weekday=friday;homework=home"]}))
    # uses-weighted (5 night uses beat 2 noon ones); "unknown" is no context value
    assert query_context(rows) == {"daytime": "night", "weekday": "friday", "homework": "home"}
    timed = validate_events(pd.DataFrame({
        "user_id": ["x"] * 3, "timestamp": ["2024-01-05 08:10", "2024-01-05 08:50",
                                            "2024-01-06 20:00"],
        "location_id": ["a", "b", "c"], "location_category": ["Shop", "Shop", "Food"]}))
    assert query_context(timed) == {"hour": 8, "weekday": "friday", "location": "Shop"}
    assert "location" not in query_context(timed, exclude="location_category")
    assert "location" not in query_context(timed, exclude="location_id")  # a venue's category


def test_metrics_invariants():
    assert set(ranking_metrics(["a"], {"a"})) == {"accuracy"} | {
        f"{m}@{k}" for m in ("Recall", "NDCG", "MRR") for k in (5, 10, 20)}
    assert coverage([["a", "b"], ["b", "c"]], 6) == 0.5
    assert coverage([], 3) == 0.0
    popularity = {"a": 1.0, "b": 0.5}
    assert mean_popularity([["a", "b"], ["b", "z"]], popularity) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        coverage([["a"]], 0)
    scores = np.random.default_rng(0).random(50)
    same = paired_bootstrap(scores, scores.copy(), n_boot=200)
    assert same == {"mean": 0.0, "low": 0.0, "high": 0.0, "wins": 0.0}
    shifted = paired_bootstrap(scores + 0.25, scores, n_boot=200, seed=1)
    assert math.isclose(shifted["mean"], 0.25) and shifted["wins"] == 1.0
    assert shifted["low"] == pytest.approx(0.25) and shifted["high"] == pytest.approx(0.25)
    noisy = paired_bootstrap(scores, np.random.default_rng(1).random(50), seed=2)
    assert noisy["low"] <= noisy["mean"] <= noisy["high"]
    assert paired_bootstrap(scores, np.roll(scores, 1), seed=5) == paired_bootstrap(
        scores, np.roll(scores, 1), seed=5)
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])


# ----------------------------------------------------------------------- real data

def real(name: str, folder: str):
    if not (SHARED_DATA / folder).exists():
        pytest.skip(f"real data {SHARED_DATA / folder} is absent (../shared/data)")
    from uscope.data.datasets import load_dataset

    return load_dataset(name)


def test_real_frappe_leave_out_and_cold_users():
    events = real("frappe", "frappe").events
    split = leave_out_split(events, "app", fraction=0.2, seed=0)
    assert_targets_hidden(split, "app")
    sizes = events.groupby("user_id")["app"].nunique()
    for user in split.users[:50]:
        n = sizes[user]
        assert len(split.targets[user]) == min(max(1, math.floor(0.2 * n + 0.5)), n - 1)
    assert set(split.contexts[split.users[0]]) <= {"daytime", "weekday", "homework"}
    cold = cold_user_split(events, "app", max_known=5, seed=0)
    assert_targets_hidden(cold, "app")
    assert set(cold.users) == set(sizes[sizes > 5].index)
    print(f"\nFrappe leave-out 0.2: {len(split.users)} users, {split.mean_targets():.2f} "
          f"targets; cold-5: {len(cold.users)} users, {cold.mean_targets():.2f} targets")


def test_real_foursquare_later_weeks_of_venues():
    data = real("foursquare-nyc", "foursquare_nyc")
    events = data.events
    split = later_weeks_split(events, "place")
    assert_targets_hidden(split, item_column("place"))
    weeks = data.extras["weeks"].groupby("user_id")["week"].max() + 1  # the reader's weeks
    for user in split.users[:30]:
        history = max(2, math.floor(0.7 * weeks[user]))
        last = pd.Timestamp("2012-04-02") + pd.Timedelta(weeks=history)
        mine = split.visible[split.visible["user_id"] == user]
        assert mine["timestamp"].max() < last
        assert len(mine) == int((events.loc[events["user_id"] == user, "timestamp"]
                                 < last).sum())
    assert len(split.users) > 100
    assert all("location" not in split.contexts[u] and "hour" in split.contexts[u]
               for u in split.users)  # venues: the category would give the target away
    print(f"\nFoursquare later-weeks (place): {len(split.users)} users, "
          f"{split.mean_targets():.2f} targets")
