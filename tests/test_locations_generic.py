"""GPS places, POI mixes around them, and the generic reader on a datasets.Dataset."""

from __future__ import annotations

import pandas as pd

from uscope.data import (
    LocationMap,
    cluster_gps_places,
    fit_location_categories,
    place_centres,
    poi_mix_near_places,
    read_events,
    validate_events,
)


def test_gps_fixes_become_places_with_categories(tmp_path):
    # two clusters ~10 m apart inside, ~5 km between them
    events = validate_events(pd.DataFrame({
        "user_id": ["u"] * 4, "timestamp": pd.date_range("2024-01-01", periods=4, freq="h"),
        "app": ["a"] * 4, "app_category": ["Games"] * 4,
        "latitude": [31.2000, 31.20005, 31.2450, 31.24505],
        "longitude": [121.4000, 121.40005, 121.4000, 121.40005],
    }))
    placed = cluster_gps_places(events, radius_m=100)
    assert placed["location_id"].tolist()[:2] == ["place_0", "place_0"]
    assert placed["location_id"].nunique() == 2
    pois = pd.DataFrame({"latitude": [31.2001, 31.2002, 31.2451], "longitude": [121.4, 121.4,
                                                                                121.4],
                         "poi_type": ["Residence", "Residence", "Business affairs"]})
    mix = poi_mix_near_places(place_centres(placed), pois, radius_m=300)
    assert mix.loc["place_0"].to_dict() == {"Business affairs": 0, "Residence": 2}
    locations = fit_location_categories(mix, n_categories=2)
    named = locations.assign(placed)
    assert set(named["location_category"]) == {"Residence", "Business affairs"}
    locations.save(tmp_path / "locations.json")
    assert LocationMap.load(tmp_path / "locations.json").categories == locations.categories


def test_generic_reader_on_hf_dataset():
    from datasets import Dataset

    dataset = Dataset.from_dict({"u": ["a", "b"], "t": [1704096000, 1704099600],
                                 "app": ["chat", "maps"], "app_category": ["Social", "Nav"]})
    events, report = read_events(dataset, {"user_id": "u", "timestamp": "t"}, timestamp_unit="s")
    assert report.accepted == 2
    assert events["timestamp"].tolist() == [pd.Timestamp("2024-01-01 08:00"),
                                            pd.Timestamp("2024-01-01 09:00")]
