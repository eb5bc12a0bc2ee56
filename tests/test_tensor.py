"""Behaviour tensor X_u (eq. 1) and its observed mask: exact round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import NETFP_CSV

from uscope.data import (
    BehaviourTensors,
    TensorConfig,
    build_tensors,
    load_dataset,
    validate_events,
)
from uscope.data.schema import DataError


def _events(rows):
    return validate_events(pd.DataFrame(rows, columns=[
        "user_id", "timestamp", "app", "app_category", "location_category", "traffic_bytes"]))


def test_counts_traffic_presence_exact():
    events = _events([
        ("a", "2024-01-01 00:05", "x", "Games", "Home", 100),
        ("a", "2024-01-01 00:10", "x", "Games", "Home", 50),
        ("a", "2024-01-01 01:00", "y", "News", "Work", 7),
        ("b", "2024-01-01 00:20", "y", "News", "Work", 0),
        ("b", "2024-01-02 23:59", "y", "News", "Work", 1),  # outside the 8 x 15-min window
    ])
    batch = build_tensors(events, TensorConfig(slot_minutes=15, n_slots=8))
    assert batch.shape == (2, 4, 8, 1, 2)  # C = 2 apps + traffic + presence; 2 places
    assert batch.channel_names == ["app:Games", "app:News", "traffic", "presence"]
    assert batch.cell_names == ["Home", "Work"]
    raw = batch.denormalize(batch.values)
    assert np.allclose(raw[0, 0, 0, 0, 0], 2)  # two Games uses in slot 0 at Home
    assert np.allclose(raw[0, 2, 0, 0, 0], 150)  # their traffic summed
    assert np.allclose(raw[0, 1, 4, 0, 1], 1)  # News at 01:00 = slot 4, at Work
    assert np.allclose(raw[0, 3, :, 0, :].sum(), 2)  # present in two (slot, place) pairs
    assert np.allclose(raw.sum(), 2 + 150 + 1 + 7 + 2 + 1 + 0 + 1)  # nothing else appears
    assert batch.values.min() >= 0 and batch.values.max() <= 1
    # observed = slots with any event: user a slots 0 and 4, user b slot 1
    assert batch.observed_mask[0, :, 0, 0].nonzero()[0].tolist() == [0, 4]
    assert batch.observed_mask[1, :, 0, 0].nonzero()[0].tolist() == [1]


def test_totals_match_events_on_simulated(simulated):
    """SIMULATED data: per-user, per-category totals in X_u equal the event counts."""
    events = simulated.events
    batch = build_tensors(events, TensorConfig(slot_minutes=15, n_slots=96 * 3))
    raw = batch.denormalize(batch.values)
    want = events.groupby(["user_id", "app_category"]).size()
    for (user, category), count in want.items():
        i = batch.user_ids.index(user)
        c = batch.channel_names.index(f"app:{category}")
        assert round(float(raw[i, c].sum())) == count
    presence = raw[:, batch.channel_groups["location"][0]]
    assert set(np.unique(np.round(presence, 6))) <= {0.0, 1.0}


def test_netfp_tensor(netfp_events):
    events, _ = netfp_events
    batch = build_tensors(events, TensorConfig(slot_minutes=60, n_slots=24))
    assert batch.shape == (1203, 19, 24, 1, 1)
    assert list(batch.channel_groups) == ["app"]  # no traffic, no places in this file
    active_hours = events.groupby("user_id")["timestamp"].apply(lambda s: s.dt.hour.nunique())
    observed_hours = batch.observed_mask.sum(axis=(1, 2, 3))
    assert np.array_equal(observed_hours, active_hours.loc[batch.user_ids].to_numpy())
    raw = pd.read_csv(NETFP_CSV, encoding="gb18030")
    assert np.median(observed_hours) == raw.groupby("id")["hour"].nunique().median()


def test_save_load_round_trip(tmp_path, simulated):
    batch = build_tensors(simulated.events, TensorConfig(slot_minutes=60, n_slots=72))
    batch.save(tmp_path / "x.npz")
    back = BehaviourTensors.load(tmp_path / "x.npz")
    assert np.array_equal(back.values, batch.values)
    assert np.array_equal(back.observed_mask, batch.observed_mask)
    assert back.user_ids == batch.user_ids and back.channel_names == batch.channel_names
    assert back.config == batch.config and back.channel_groups == batch.channel_groups
    values, mask = back.as_torch()
    assert tuple(values.shape) == batch.shape and tuple(mask.shape) == batch.observed_mask.shape


def test_latlon_grid_and_errors():
    events = validate_events(pd.DataFrame({
        "user_id": ["a", "a", "a"], "timestamp": ["2024-01-01 00:00"] * 3,
        "app": ["x"] * 3, "app_category": ["Games"] * 3,
        "latitude": [31.0, 31.5, 31.0], "longitude": [121.0, 121.5, 121.5],
    }))
    batch = build_tensors(events, TensorConfig(n_slots=4, spatial="latlon", grid=(2, 2)))
    presence = batch.values[0, batch.channel_groups["location"][0], 0]  # (H, W)
    assert presence.tolist() == [[0.0, 1.0], [1.0, 1.0]]  # north row: only (31.5, 121.5)
    with pytest.raises(ValueError, match="fewer cells"):
        build_tensors(_events([("a", "2024-01-01", "x", "G", p, 1) for p in "pqr"]),
                      TensorConfig(grid=(1, 2)))
    with pytest.raises(DataError, match="empty"):
        build_tensors(events.iloc[:0])
    with pytest.raises(DataError, match="not in TensorConfig.app_categories"):
        build_tensors(events, TensorConfig(app_categories=["News"]))


def _reference_tensor(events: pd.DataFrame, batch: BehaviourTensors
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X_u and the observed mask the slow, obvious way: one event at a time into a dense
    float64 array, then log1p and the per-channel maximum (not build_tensors' code path)."""
    n, c, t, h, w = batch.shape
    counts = np.zeros((n, c, t, h * w))
    observed = np.zeros((n, t), dtype=np.float32)
    user = {u: i for i, u in enumerate(batch.user_ids)}
    channel = {name: i for i, name in enumerate(batch.channel_names)}
    cell = {name: i for i, name in enumerate(batch.cell_names) if name}
    slot_length = pd.Timedelta(minutes=batch.config.slot_minutes)
    start = pd.Timestamp(batch.start)
    anywhere = batch.cell_names[0] == "anywhere"
    group = "app" if events["app"].notna().any() else "visit"
    for row in events.itertuples(index=False):
        slot = (row.timestamp - start) // slot_length
        if not 0 <= slot < t:
            continue
        u = user[row.user_id]
        observed[u, slot] = 1.0
        place = None if pd.isna(row.location_category) else row.location_category
        s = 0 if anywhere else cell[place if place is not None else "Unknown place"]
        uses = 1 if pd.isna(row.uses) else int(row.uses)
        kind = row.app_category if group == "app" else place
        if kind is not None and not pd.isna(kind):
            counts[u, channel[f"{group}:{kind}"], slot, s] += uses
        if "traffic" in channel and not pd.isna(row.traffic_bytes):
            counts[u, channel["traffic"], slot, s] += int(row.traffic_bytes)
        recorded = not (pd.isna(row.location_id) and place is None and pd.isna(row.latitude))
        if "presence" in channel and (not anywhere or recorded):
            counts[u, channel["presence"], slot, s] = 1.0
    logs = np.log1p(counts)
    scale = logs.max(axis=(0, 2, 3))
    scale[scale == 0] = 1.0
    values = (logs / scale[None, :, None, None]).astype(np.float32)
    mask = np.repeat(observed[:, :, None], h * w, axis=2)
    return values.reshape(batch.shape), mask.reshape(n, t, h, w), scale


def _assert_matches_reference(events: pd.DataFrame, config: TensorConfig) -> BehaviourTensors:
    batch = build_tensors(events, config)
    values, mask, scale = _reference_tensor(validate_events(events), batch)
    assert batch.values.dtype == np.float32
    assert np.array_equal(batch.values, values)  # bit for bit, not merely close
    assert np.array_equal(batch.observed_mask, mask)
    assert np.array_equal(batch.scale, scale)
    return batch


def test_equals_reference_on_real_shanghai_sample(shared_data):
    """Real rows (apps, places, traffic): the tensor is exactly the reference's."""
    events = load_dataset("shanghai-sample").events
    batch = _assert_matches_reference(events, TensorConfig(slot_minutes=15, n_slots=96))
    assert {"app", "traffic", "location"} <= set(batch.channel_groups)


def test_equals_reference_on_real_netfp_and_foursquare(netfp_events, shared_data):
    """Real app use without places (netfp), and place-only visit channels (Foursquare)."""
    events, _ = netfp_events
    batch = _assert_matches_reference(events, TensorConfig(slot_minutes=60, n_slots=24))
    assert batch.cell_names == ["anywhere"] and "presence" not in batch.channel_names
    visits = load_dataset("foursquare-nyc").events
    first = visits[visits["user_id"].isin(sorted(visits["user_id"].unique())[:20])]
    batch = _assert_matches_reference(first, TensorConfig(slot_minutes=180, n_slots=56))
    assert next(iter(batch.channel_groups)) == "visit"


def test_equals_reference_on_simulated_in_any_row_order(simulated):
    """SIMULATED data, rows shuffled, some outside the window, some standing for several
    uses: still exactly the reference (row order never changes a sum of whole numbers)."""
    events = simulated.events.sample(frac=1.0, random_state=0).reset_index(drop=True)
    events.loc[events.index[::7], "location_category"] = pd.NA  # "Unknown place" cells
    events.loc[events.index[::5], "uses"] = 3
    config = TensorConfig(slot_minutes=30, n_slots=100, start="2016-04-20 06:00")
    batch = _assert_matches_reference(events, config)
    assert "Unknown place" in batch.cell_names
    ordered = build_tensors(events.sort_values(["user_id", "timestamp"]), config)
    assert np.array_equal(ordered.values, batch.values)


def test_validate_unsorted_keeps_rows_and_input():
    raw = pd.DataFrame({"user_id": ["b", "a"], "timestamp": ["2024-01-02", "2024-01-01"],
                        "app": [" x ", "y"]})
    kept = validate_events(raw, sort=False)
    assert kept["user_id"].tolist() == ["b", "a"] and kept["app"].tolist() == ["x", "y"]
    assert raw["app"].tolist() == [" x ", "y"]  # the caller's table is untouched
    assert validate_events(raw)["user_id"].tolist() == ["a", "b"]


def test_place_clusters_nearest_centre_order_and_reuse(tmp_path):
    """spatial="clusters" (eq. 1's place tessellation): every event lands in the cell of its
    nearest k-means centre, cells run north to south, and the fitted centres are kept in the
    result's config so another table is cut the same way (also after save / load)."""
    rng = np.random.default_rng(0)
    sites = np.array([[40.90, -73.90], [40.60, -74.00], [40.75, -73.70]])   # north, south, east
    pick = rng.integers(0, 3, 300)
    coords = sites[pick] + rng.normal(0, 0.005, (300, 2))
    events = validate_events(pd.DataFrame({
        "user_id": rng.choice(["a", "b", "c"], 300),
        "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 48, 300), "h"),
        "location_id": [f"v{i}" for i in range(300)], "location_category": "Food",
        "latitude": coords[:, 0], "longitude": coords[:, 1]}))
    config = TensorConfig(slot_minutes=60, n_slots=48, spatial="clusters", grid=(1, 3),
                          observed="all")
    batch = build_tensors(events, config)
    assert config.cluster_centres is None            # the caller's config is left alone
    centres = np.array(batch.config.cluster_centres)
    assert centres[:, 0].tolist() == sorted(centres[:, 0], reverse=True)   # north first
    assert np.abs(centres - sites[[0, 2, 1]]).max() < 0.01
    raw = batch.denormalize(batch.values)[:, batch.channel_names.index("visit:Food")]
    per_cell = raw.sum(axis=(0, 1))[0]                   # (W,) visits of the one row of cells
    assert np.allclose(per_cell, [(pick == k).sum() for k in (0, 2, 1)])
    batch.save(tmp_path / "x.npz")
    again = build_tensors(events.iloc[:50], BehaviourTensors.load(tmp_path / "x.npz").config)
    assert np.array_equal(np.array(again.config.cluster_centres), centres)
    with pytest.raises(DataError, match="coordinates") as err:
        gap = np.arange(300) == 7
        build_tensors(events.assign(latitude=events["latitude"].mask(gap),
                                    longitude=events["longitude"].mask(gap)), config)
    assert err.value.field == "latitude" and err.value.line == 7
