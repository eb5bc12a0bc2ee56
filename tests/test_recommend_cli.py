"""`uscope eval recommend` and `uscope recommend` on the real Frappe data, as real processes:
the anchors and the hybrid side by side on test users, paired differences, context."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
from conftest import REPO


def uscope(*args):
    return subprocess.run([sys.executable, "-m", "uscope", *map(str, args)], check=False,
                          cwd=REPO, capture_output=True, text=True, timeout=900)


def test_eval_recommend_leave_out_on_frappe(shared_data, tmp_path):
    out = tmp_path / "results.csv"
    done = uscope("eval", "recommend", shared_data / "frappe", "--protocol", "leave-out",
                  "--strategies", "hybrid,popular,ease", "--seeds", 1, "--users", "test",
                  "--max-users", 80, "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    results = pd.read_csv(out)
    assert sorted(results["strategy"]) == ["ease", "hybrid", "popular"]
    assert {"Recall@10", "NDCG@20", "MRR@5", "coverage@10", "popularity@10"} <= set(results)
    assert (results["users"] == 80).all()
    assert "vs" in done.stdout and "hybrid" in done.stdout  # the paired table
    bad = uscope("eval", "recommend", shared_data / "frappe", "--protocol", "later-weeks")
    assert bad.returncode != 0 and "timestamp" in bad.stderr  # Frappe has no times


def test_recommend_with_a_frappe_context(shared_data, tmp_path):
    events = tmp_path / "frappe.parquet"
    assert uscope("read", shared_data / "frappe", "--out", events).returncode == 0
    frame = pd.read_parquet(events)
    few = frame[frame["user_id"].isin(sorted(frame["user_id"].unique())[:60])]
    few.to_parquet(events)
    profiles = tmp_path / "profiles.parquet"
    made = uscope("profile", events, "--out", profiles, "--backend", "heuristic")
    assert made.returncode == 0, made.stderr[-3000:]
    user = min(few["user_id"].unique())
    done = uscope("recommend", "--profiles", profiles, "--events", events, "--user", user,
                  "--k", 3, "--context", "daytime=evening", "--context", "weekday=monday")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("(score") == 3
    wrong = uscope("recommend", "--profiles", profiles, "--events", events, "--user", user,
                   "--context", "mood=happy")
    assert wrong.returncode != 0 and "unknown context keys ['mood']" in wrong.stderr
