"""The simulator (SIMULATED data): deterministic, Tsinghua-format, archetypes visible."""

from __future__ import annotations

import filecmp

from uscope.data import read_tsinghua, simulate

FILES = ("App_Usage_Trace.txt", "App2Category.txt", "Categorys.txt", "base_poi.txt")


def test_same_seed_same_bytes(tmp_path):
    a = simulate(n_users=8, days=2, seed=3, out_dir=tmp_path / "a")
    b = simulate(n_users=8, days=2, seed=3, out_dir=tmp_path / "b")
    c = simulate(n_users=8, days=2, seed=4, out_dir=tmp_path / "c")
    for name in FILES:
        assert filecmp.cmp(a.directory / name, b.directory / name, shallow=False)
    assert not filecmp.cmp(a.directory / "App_Usage_Trace.txt",
                           c.directory / "App_Usage_Trace.txt", shallow=False)
    assert a.events.equals(b.events)


def test_written_files_read_back_whole(simulated):
    trace_lines = (simulated.directory / "App_Usage_Trace.txt").read_text().splitlines()
    again = read_tsinghua(simulated.directory)
    assert again.report.rows_in == again.report.accepted == len(trace_lines)
    assert len(simulated.events) == len(trace_lines)
    assert simulated.events["location_category"].notna().all()
    assert simulated.events["traffic_bytes"].notna().all()


def test_archetypes_shape_behaviour(simulated):
    events = simulated.events
    archetype = events["user_id"].map(simulated.archetypes)
    games_share = (events["app_category"] == "Games").groupby(archetype).mean()
    assert games_share.idxmax() == "night_gamer"
    night = events["timestamp"].dt.hour.between(0, 4).groupby(archetype).mean()
    assert night.idxmax() == "night_gamer"
    at_home = events["location_category"].str.startswith("Residence")
    home_share = at_home.groupby(archetype).mean()
    assert home_share["homebody"] > home_share["commuter"]
