"""Readers on every real file in ../shared/data: exact counts, quirks, encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import NETFP_CSV, TSINGHUA

from uscope.data import DataError, fit_location_categories, read_netfp, read_tsinghua
from uscope.data.tsinghua import read_app_categories, read_base_poi, read_category_names


def test_categorys_quirks(shared_data):
    names = read_category_names(TSINGHUA / "Categorys.txt")
    assert sorted(names.names) == list(range(20))
    assert names.names[4] == "Social_Networking"  # escaped underscore
    assert names.names[9] == "Lifestyle"  # trailing space inside quotes
    assert names.names[14] == "Weather"  # typo 'Weath1er' corrected
    assert all(n == n.strip() and "'" not in n for n in names.names.values())
    # the two stray lines without a tab are kept as example apps, not dropped or misread
    assert names.examples == {4: ["wechat", "linkedin", "weibo"], 9: ["meituan"]}
    assert any("Weath1er" in fix for fix in names.fixes)


def test_app2category_exact(shared_data):
    mapping, report = read_app_categories(TSINGHUA / "App2Category.txt")
    assert report.rows_in == report.accepted == 2000
    assert sorted(mapping) == list(range(1, 2001))
    assert set(mapping.values()) <= set(range(20))


def test_base_poi_exact(shared_data):
    poi = read_base_poi(TSINGHUA / "base_poi.txt")
    assert poi.shape == (9851, 17)
    assert poi.index.tolist() == list(range(9851))
    assert poi.columns[0] == "Medical care" and poi.columns[-1] == "Other"
    assert (poi.to_numpy() >= 0).all()
    assert int((poi.sum(axis=1) == 0).sum()) == 445  # base stations without any POI


def test_location_categories_from_real_poi(shared_data):
    poi = read_base_poi(TSINGHUA / "base_poi.txt")
    locations = fit_location_categories(poi, n_categories=10, seed=0)
    assert len(locations.categories) == 9851  # every station mapped
    names = locations.category_names
    assert len(names) == 11  # ten POI clusters + "No POI data"
    assert len(set(names)) == len(names)
    assert sum(v == "No POI data" for v in locations.categories.values()) == 445
    # a station that is almost all residence lands in a category named after Residence
    residential = poi.index[(poi["Residence"] / poi.sum(axis=1).clip(lower=1)) > 0.9][0]
    assert locations.categories[str(residential)].startswith("Residence")


def test_netfp_exact(netfp_events):
    events, report = netfp_events
    assert report.rows_in == report.accepted == 44401 and report.rejected == 0
    assert events["user_id"].nunique() == 1203
    raw = pd.read_csv(NETFP_CSV, encoding="gb18030")
    assert len(events) == int(raw["times"].sum())  # each row became `times` events
    assert "微信" in set(events["app"]) and "通讯聊天" in set(events["app_category"])
    # per (device, hour, app) counts come back exactly, inside the right hour
    got = events.groupby(["user_id", events["timestamp"].dt.hour, "app"]).size()
    want = raw.groupby(["id", "hour", "app"])["times"].sum()
    assert np.array_equal(np.sort(got.to_numpy()), np.sort(want.to_numpy()))
    assert events["timestamp"].dt.date.nunique() == 1
    assert events["location_id"].isna().all() and events["traffic_bytes"].isna().all()


def test_netfp_wrong_encoding_names_line(shared_data):
    with pytest.raises(DataError) as info:
        read_netfp(NETFP_CSV, encoding="utf-8")
    assert info.value.line == 2 and "utf-8" in str(info.value)
    assert str(NETFP_CSV) in str(info.value)


def test_tsinghua_directory_with_documented_trace(shared_data, tmp_path):
    """The trace file is not published here: write lines in its documented format beside the
    real companion files and read the whole directory."""
    for name in ("App2Category.txt", "Categorys.txt", "base_poi.txt"):
        (tmp_path / name).symlink_to(TSINGHUA / name)
    (tmp_path / "App_Usage_Trace.txt").write_text(
        "0 20160420081319 8194 361 1920\n"
        "0 20160420081400 8194 2 0\n"
        "1 20160421230001 7 1999 52\n"
    )
    data = read_tsinghua(tmp_path)
    events = data.events
    assert len(events) == 3 and data.report.accepted == 3
    first = events.iloc[0]
    assert first["timestamp"] == pd.Timestamp("2016-04-20 08:13:19")
    assert first["location_id"] == "8194" and first["traffic_bytes"] == 1920
    category_of_361 = data.category_names.names[data.app_categories[361]]
    assert first["app_category"] == category_of_361
    assert events["location_category"].notna().all()
    assert events.loc[2, "location_category"] == data.locations.categories["7"]


def test_netfp_english_names_cover_the_file(netfp_events):
    events, _ = netfp_events
    english, report = read_netfp(NETFP_CSV, language="en")
    assert report.notes == []  # every app and category has a gloss
    assert english["app"].nunique() == events["app"].nunique() == 52
    assert english["app_category"].nunique() == events["app_category"].nunique() == 19
    assert "WeChat" in set(english["app"]) and "Messaging" in set(english["app_category"])
    assert english["timestamp"].equals(events["timestamp"])
    with pytest.raises(ValueError, match="language"):
        read_netfp(NETFP_CSV, language="fr")
