"""The vectorised features of a population equal the one-user reference, field for field.

``population_features`` (group-by passes over the whole table) must give what
``user_features`` gives on each user's slice: on every real dataset, under a history budget
and a small top_k, and on random tables with ties, repeated uses, untimed rows and
location-only users (hypothesis).
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uscope.data.datasets import load_dataset
from uscope.data.schema import validate_events
from uscope.profile.features import FeatureConfig, user_features, user_slices
from uscope.profile.population import iter_features, population_features

CONFIGS = [FeatureConfig(), FeatureConfig(max_events=40, top_k=3, session_gap_minutes=10)]


def assert_same(a, b, path: str = "") -> None:
    """Equal values; floats to 1e-9 relative (sums may run in another order)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), path
        assert a.shape == b.shape and (a.dtype == b.dtype or a.size == 0), path
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=path)
    elif isinstance(a, float) and isinstance(b, float):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12), path
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), (path, a, b)
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif hasattr(a, "__dataclass_fields__"):
        assert type(a) is type(b), path
        for f in fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    else:
        assert type(a) is type(b) and a == b, (path, a, b)


def assert_population_matches(events: pd.DataFrame, users: list[str],
                              config: FeatureConfig) -> None:
    slices = user_slices(events)
    empty = events.iloc[0:0]
    reference = [user_features(u, events.iloc[slices[u]] if u in slices else empty, config)
                 for u in users]
    vectorised = population_features(events, users, config)
    assert [f.user_id for f in vectorised] == users
    for ref, new in zip(reference, vectorised):
        assert_same(ref, new, ref.user_id)


@pytest.fixture(scope="module")
def real_tables(netfp_events):
    tables = {"netfp": netfp_events[0]}
    for name in ("foursquare-nyc", "studentlife", "frappe", "shanghai-sample"):
        tables[name] = load_dataset(name).events
    tables["simulated"] = load_dataset("simulated", n_users=60, days=5, seed=3).events
    return {name: validate_events(table) for name, table in tables.items()}


@pytest.mark.parametrize("name", ["netfp", "foursquare-nyc", "studentlife", "frappe",
                                  "shanghai-sample", "simulated"])
@pytest.mark.parametrize("config", CONFIGS, ids=["default", "budget40-top3-gap10"])
def test_vectorised_features_equal_the_reference_on_real_data(real_tables, name, config):
    events = real_tables[name]
    users = sorted(events["user_id"].unique().tolist())
    if name == "netfp":
        users = users[::7]  # every 7th device: the reference path takes ~10 ms a user
    assert_population_matches(events, [*users, "nobody"], config)


def test_listed_order_duplicates_and_blocks(real_tables):
    events = real_tables["foursquare-nyc"]
    users = sorted(events["user_id"].unique().tolist())
    wanted = [users[5], "ghost", users[0], users[5], users[1]]
    got = population_features(events, wanted)
    assert [f.user_id for f in got] == wanted
    assert got[1].cold_start and got[1].n_events == 0
    assert_same(got[0], got[3])
    in_blocks = list(iter_features(events, users, block_size=7))
    assert_same(population_features(events, users), in_blocks)


def test_unsorted_table_is_refused(real_tables):
    events = real_tables["shanghai-sample"].iloc[::-1]
    with pytest.raises(ValueError, match="not sorted by user_id"):
        population_features(events, ["x"])


APPS = {"WeChat": "Social", "QQ": "Social", "Maps": "Travel", "Game": "Games", "Mystery": None}
PLACES = [(None, None), ("Office", None), ("Home", None), (None, "v1"), ("Office", "v1"),
          ("Home", "v2"), ("Shop", "v2"), (None, "Home")]  # "Home" is also a venue id


@st.composite
def event_tables(draw):
    """Small tables with ties, repeated uses, app-less visits and (sometimes) no times."""
    n = draw(st.integers(1, 60))
    timed = draw(st.booleans()) or n > 50
    rows = []
    for _ in range(n):
        app = draw(st.sampled_from([*APPS, None]))
        category, venue = draw(st.sampled_from(PLACES))
        if app is None and category is None and venue is None:
            venue = "v3"
        minute = draw(st.integers(0, 14 * 24 * 60))
        rows.append({
            "user_id": draw(st.sampled_from(["a", "b", "c", "d"])),
            "timestamp": pd.Timestamp("2024-03-01") + pd.Timedelta(minutes=minute)
            if timed else pd.NaT,
            "app": app, "app_category": APPS.get(app) if app else None,
            "location_category": category, "location_id": venue,
            "uses": draw(st.sampled_from([None, 1, 2, 5])),
        })
    return validate_events(pd.DataFrame(rows))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_tables(), st.sampled_from(CONFIGS))
def test_vectorised_features_equal_the_reference_on_random_tables(events, config):
    users = sorted(events["user_id"].unique().tolist())
    assert_population_matches(events, [*users, "e"], config)
