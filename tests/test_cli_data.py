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
    """The README's main job with its default LLM (kept short: 3 users, 16 new tokens)."""
    done = uscope("demo", "--out", tmp_path / "demo", "--users", 3, "--days", 2,
                  "--max-new-tokens", 16, "--show", 2)
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
