"""The data commands, run as real processes."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
from conftest import NETFP_CSV, REPO


def uscope(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "uscope", *map(str, args)], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_demo_main_job(tmp_path):
    """The README's main job with its default LLM (kept short: 3 users, 16 new tokens, a few
    training steps; tests/test_demo.py checks every stage's output)."""
    done = uscope("demo", "--out", tmp_path / "demo", "--users", 3, "--days", 2,
                  "--max-new-tokens", 16, "--show", 2, "--complete-steps", 10,
                  "--intent-steps", 5)
    assert done.returncode == 0, done.stderr
    assert "SIMULATED" in done.stdout
    assert "C x T x H x W" in done.stdout
    assert "3 users: 3 profiled, 0 failed" in done.stdout
    assert done.stdout.count("new app categories to try:") == 2
    for name in ("tensors.npz", "profiles.parquet", "population/App_Usage_Trace.txt"):
        assert (tmp_path / "demo" / name).exists()


def test_read_lenient_reports_and_strict_fails(tmp_path):
    bad = tmp_path / "data0117_bad.csv"
    bad.write_bytes("id,hour,app,app_cat,times\r\nA,1,微信,通讯聊天,2\r\nA,99,微信,通讯聊天,2\r\n"
                    .encode("gb18030"))
    strict = uscope("read", bad, "--out", tmp_path / "e.parquet")
    assert strict.returncode == 2
    assert "line 3" in strict.stderr and "'hour'" in strict.stderr
    lenient = uscope("read", bad, "--out", tmp_path / "e.parquet", "--lenient")
    assert lenient.returncode == 0, lenient.stderr
    assert "2 rows in, 1 accepted, 1 rejected" in lenient.stdout
    side = pd.read_csv(tmp_path / "e.rejects.tsv", sep="\t")
    assert side["line"].tolist() == [3]


def test_read_then_tensors_on_real_netfp(tmp_path, shared_data):
    read = uscope("read", NETFP_CSV, "--out", tmp_path / "netfp.parquet")
    assert read.returncode == 0, read.stderr
    assert "1203 users" in read.stdout
    built = uscope("tensors", tmp_path / "netfp.parquet", "--out", tmp_path / "x.npz",
                   "--slot-minutes", 60, "--slots", 24)
    assert built.returncode == 0, built.stderr
    assert "1203 users" in built.stdout and "19 x 24 x 1 x 1" in built.stdout


def test_read_each_shared_folder_as_a_new_user_would(shared_data, tmp_path):
    """`uscope read DIR` on each folder of ../shared/data: the user counts of its README."""
    expected = {"foursquare_nyc": ("40161 rows in, 40161 accepted, 0 rejected", "124 users"),
                "frappe": ("64431 rows in, 64431 accepted, 0 rejected", "630 users"),
                "shanghai_sample": ("15869 rows in, 15869 accepted, 0 rejected", "6 users"),
                "studentlife": ("225071 rows in, 225071 accepted, 0 rejected", "33 users"),
                "studentlife/app.csv": ("101231 rows in", "2 users")}
    for folder, (counts, users) in expected.items():
        done = uscope("read", shared_data / folder)
        assert done.returncode == 0, done.stderr
        assert counts in done.stdout and f"\n{users}, " in "\n" + done.stdout, done.stdout
    done = uscope("read", shared_data / "foursquare_nyc", "--out", tmp_path / "fsq.parquet")
    assert "(0 app uses, 40161 place-only)" in done.stdout
    events = pd.read_parquet(tmp_path / "fsq.parquet")
    assert events["app"].isna().all()
    frappe = uscope("read", shared_data / "frappe", "--format", "frappe", "--out",
                    tmp_path / "frappe.parquet")
    assert frappe.returncode == 0, frappe.stderr
    again = uscope("read", tmp_path / "frappe.parquet")  # an untimed table reads back
    assert "630 users, 64431 events" in again.stdout, again.stderr
    wrong = uscope("read", shared_data / "frappe", "--format", "nosuch")
    assert wrong.returncode == 2 and "foursquare-nyc" in wrong.stderr


def test_simulate_events_per_day(tmp_path):
    """`--events-per-day` sets the SIMULATED trace's density; a bad value is one clear line."""
    done = uscope("simulate", "--out", tmp_path / "sim", "--users", 7, "--days", 1,
                  "--events-per-day", 200)
    assert done.returncode == 0, done.stderr
    events = pd.read_parquet(tmp_path / "sim" / "events.parquet")
    assert 0.75 * 7 * 200 < len(events) < 1.25 * 7 * 200 and "SIMULATED" in done.stdout
    bad = uscope("simulate", "--out", tmp_path / "bad", "--events-per-day", 0)
    assert bad.returncode == 2 and "events_per_day must be a positive" in bad.stderr


def test_tensors_on_place_clusters_of_real_foursquare(tmp_path, shared_data):
    """`uscope tensors --spatial clusters --grid H W`: k-means place cells, centres saved."""
    read = uscope("read", shared_data / "foursquare_nyc", "--out", tmp_path / "f.parquet")
    assert read.returncode == 0, read.stderr
    built = uscope("tensors", tmp_path / "f.parquet", "--out", tmp_path / "x.npz",
                   "--slot-minutes", 180, "--slots", 56, "--spatial", "clusters",
                   "--grid", 2, 3)
    assert built.returncode == 0, built.stderr
    assert "124 users" in built.stdout and "11 x 56 x 2 x 3" in built.stdout
    from uscope.data import BehaviourTensors

    assert len(BehaviourTensors.load(tmp_path / "x.npz").config.cluster_centres) == 6
