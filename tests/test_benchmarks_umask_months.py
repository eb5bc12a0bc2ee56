"""The long-horizon layout of benchmarks/bench_umask_months.py on real Foursquare check-ins:
weeks of slots from a Monday, place-cluster cells, tasks in days and weeks, RQ4 noise; and the
anchors moved to another machine (saved tensors, an anchors-only run joined to the report)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchmark_runs import command, run

from generative.tasks import target_window
from uscope.data import load_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import umask_data
from bench_umask_months import join_anchor_results
from umask_data import Horizon, months_data, noise_embedding


def test_tasks_are_a_day_two_weeks_and_a_few_days_of_evidence():
    layout = Horizon(weeks=8, slot_hours=3, grid=(3, 3), cold_days=3.0)
    short, long, cold = layout.tasks()
    assert layout.n_slots == 8 * 7 * 8
    assert short.horizon == 8 and long.horizon == cold.horizon == 2 * 7 * 8
    assert target_window(long, layout.n_slots).sum() == 2 * 7 * 8
    with pytest.raises(ValueError, match="divide a day"):
        Horizon(slot_hours=5)
    # the cold-start budget is a share of all T*H*W coordinates: 3 days of slots in 9 cells
    revealed = cold.init_ratio * layout.n_slots * 9
    assert revealed == pytest.approx(3 * 8 * 9)
    assert cold.cold and cold.max_ratio > cold.init_ratio


def test_noise_embedding_keeps_the_moments_not_the_users():
    rng = np.random.default_rng(0)
    h = rng.normal(2.0, 0.5, (400, 16)).astype(np.float32)
    noise = noise_embedding(h, seed=0)
    assert np.allclose(noise.mean(0), h.mean(0), atol=0.1)
    assert np.allclose(noise.std(0), h.std(0), atol=0.1)
    assert abs(np.corrcoef(noise[:, 0], h[:, 0])[0, 1]) < 0.2
    assert not np.array_equal(noise, noise_embedding(h, seed=1))


@pytest.mark.slow
def test_foursquare_months_start_on_a_monday_and_keep_users_with_enough_weeks():
    data = load_dataset("foursquare-nyc")
    layout = Horizon(weeks=12, slot_hours=3, grid=(2, 2))
    bench = months_data(data, layout, embedding="standin")
    weeks = (data.events.groupby("user_id")["timestamp"].max()
             - pd.Timestamp("2012-04-02")).dt.days // 7 + 1
    assert bench.values.shape == ((weeks >= 12).sum(), 11, 12 * 56, 2, 2)
    assert f"{(weeks < 12).sum()} users with fewer than 12 weeks left out" in bench.name
    assert bench.season == 56 and bench.observed.all()
    # the visit channels of week 0, Monday 00:00-03:00 hold that slot's check-ins exactly
    first = data.events[(data.events["timestamp"] < pd.Timestamp("2012-04-02 03:00"))
                        & data.events["user_id"].isin(weeks.index[weeks >= 12])]
    assert (bench.values[:, :10, 0] > 0).any(axis=(1, 2, 3)).sum() == first["user_id"].nunique()


def test_saved_tensors_load_back_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    data = umask_data.BenchData("foursquare-nyc (real)", rng.random((4, 3, 16, 2, 2), dtype=np.float32),
                     rng.random((4, 16, 2, 2)) > 0.5, rng.random((4, 8), dtype=np.float32),
                     {"visit": [0, 1], "location": [2]}, ["a", "b", "here"], "stand-in",
                     season=56, key="foursquare-nyc", h_kind="standin")
    umask_data.save_bench_data(data, str(tmp_path / "t.npz"))
    back = umask_data.load_bench_data(str(tmp_path / "t.npz"))
    for field in ("values", "observed", "h"):
        assert np.array_equal(getattr(back, field), getattr(data, field))
        assert getattr(back, field).dtype == getattr(data, field).dtype
    for field in ("name", "groups", "channel_names", "embedding", "season", "key", "h_kind"):
        assert getattr(back, field) == getattr(data, field)


def _seed_result(test_users, rows, digest="abc"):
    return {"test": test_users, "train_seconds": {}, "sample_seconds": {},
            "tasks": {task: dict(rows) for task in ("short_term", "long_term", "cold_start")},
            "anchors": {}, "fingerprint": {"data": "foursquare-nyc", "sha256": digest}}


def test_joined_anchor_results_must_come_from_the_same_test_users(tmp_path):
    scores = {"visit": {"rmse": 0.1, "mae": 0.01, "crps": 0.02}}
    other = {"U-MASK": {"visit": {"rmse": 9.0}}, "CSDI": scores}   # a stray row: not taken
    anchors = _seed_result([3, 1], other)
    anchors["anchors"] = {"CSDI": {"device": "NVIDIA H200", "epochs": 100, "patience": 10,
                                   "samples": 16}}
    anchors["train_seconds"] = {"CSDI": 600.0}
    anchors["sample_seconds"] = {"CSDI": {"short_term": 30.0}}
    (tmp_path / "0.json").write_text(json.dumps(anchors))
    results = {0: _seed_result([3, 1], {"U-MASK": scores})}
    join_anchor_results(results, tmp_path)
    assert results[0]["tasks"]["long_term"] == {"U-MASK": scores, "CSDI": scores}
    assert results[0]["anchors"]["CSDI"]["device"] == "NVIDIA H200"
    assert results[0]["anchors"]["CSDI"]["joined"] == str(tmp_path / "0.json")
    assert results[0]["train_seconds"] == {"CSDI": 600.0}
    with pytest.raises(SystemExit, match="other tensors, layout or test users than seed 0"):
        join_anchor_results({0: _seed_result([1, 3], {})}, tmp_path)
    with pytest.raises(SystemExit, match="other tensors, layout or test users than seed 0"):
        join_anchor_results({0: _seed_result([3, 1], {}, digest="other")}, tmp_path)
    with pytest.raises(SystemExit, match="brings CSDI, which this run has too"):
        join_anchor_results({0: _seed_result([3, 1], {"CSDI": scores})}, tmp_path)
    with pytest.raises(SystemExit, match="1.json is missing"):
        join_anchor_results({1: _seed_result([3, 1], {})}, tmp_path)


@pytest.mark.slow
def test_anchors_run_from_saved_tensors_without_the_dataset_and_join_the_report(tmp_path):
    """The route of a GPU machine: tensors saved here, anchors fitted where the dataset is not,
    their rows joined to the report's run on the same seeds."""
    def bench(*argv, env=None):
        return run(command("bench_umask_months", None, argv), tmp_path, env)

    tensors, anchors = tmp_path / "t.npz", tmp_path / "anchors"
    assert bench("--save-tensors", str(tensors)).returncode == 0
    nowhere = {"USCOPE_DATA": str(tmp_path / "no-data")}
    wrong = bench("--tensors", str(tensors), "--anchors-only", "--weeks", "3", env=nowhere)
    assert wrong.returncode == 2 and "has 112 slots" in wrong.stderr
    fitted = bench("--tensors", str(tensors), "--anchors-only", "--anchors", "SAITS",
                   "--workdir", str(anchors), env=nowhere)
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    assert json.loads((anchors / "0.json").read_text())["anchors"]["SAITS"]["epochs"] == 1
    joined = bench("--anchors", "--anchor-results", str(anchors))
    assert joined.returncode == 0, joined.stderr[-2000:]
    assert "\n| SAITS |" in joined.stdout
    assert (f"Anchors (PyPOTS): SAITS ({os.cpu_count()}-core CPU, an `--anchors-only` run "
            "joined by `--anchor-results`, up to 1 epochs, patience 10, batch 32)") \
        in joined.stdout


def test_several_anchor_batch_sizes_only_for_the_cost_run(capsys):
    from bench_umask_months import main

    with pytest.raises(SystemExit):
        main(["--anchor-batch-size", "32", "4"])
    assert "--anchor-batch-size takes one size, or several with --anchor-cost" in \
        capsys.readouterr().err


def test_a_cost_worker_the_machine_kills_still_reports_its_peak_memory():
    from umask_anchor_cost import outcome, run_worker

    code, peak_mb, seconds = run_worker([sys.executable, "-c", (
        "import os, signal; block = b'x' * (300 * 2**20); os.kill(os.getpid(), signal.SIGKILL)")])
    assert code == -9 and peak_mb >= 300
    assert outcome(code, seconds).startswith("killed by SIGKILL after ")
    code, _, seconds = run_worker([sys.executable, "-c", "raise SystemExit(3)"])
    assert outcome(code, seconds).startswith("failed (exit 3) after ")


def _table(stdout: str) -> dict[tuple[str, str], dict[str, str]]:
    """The cost table's rows by (anchor, batch size)."""
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, [cell.strip() for cell in line.strip("|").split("|")], strict=True))
            for line in lines[1:]]
    return {(row["anchor"], row["batch size"]): row for row in rows}


@pytest.mark.slow
def test_anchor_cost_times_each_anchor_in_its_own_process_and_projects_one_seed(tmp_path):
    def cost(*extra):
        return run(command("bench_umask_months", None, (
            "--anchor-cost", "--anchors", "SAITS", "CSDI", "--anchor-batch-size", "4",
            "--slot-hours", "6", "--grid", "2", "2", "--anchor-epochs", "4000",
            "--anchor-samples", "300", "--cost-users", "2", "--workdir", "cost", *extra)),
            tmp_path)

    done = cost()
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("tensor (C, T, H, W) = (11, 56, 2, 2), 44 features a slot for the anchors; seed 0's "
            "split: 24 training users (5 of them validate every epoch, inside its time), 6 test "
            "users") in done.stdout
    rows = _table(done.stdout)
    assert set(rows) == {("SAITS", "4"), ("CSDI", "4")}
    assert rows["SAITS", "4"]["samples per user"] == "1"
    assert rows["CSDI", "4"]["samples per user"] == "300"
    for row in rows.values():
        assert row["outcome"] == "measured" and float(row["peak RSS (MiB)"]) > 100
    csdi = rows["CSDI", "4"]      # 4000 epochs, then 3 tasks x 6 test users x 300 samples
    epoch, completion = (float(csdi["one epoch (s)"]), float(csdi["one completion (s per user)"]))
    assert epoch > 0 and completion > 0
    assert float(csdi["one seed at the budget (h)"]) == pytest.approx(
        (4000 * epoch + 3 * 6 * 300 * completion) / 3600, rel=0.02)
    # a rerun with --reuse keeps the finished rows; other timing options time them again
    again = cost("--reuse")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(": kept from ") == 2 and _table(again.stdout) == rows
    assert not (tmp_path / "cost" / "cost-tensors.npz").exists()
    other = cost("--reuse", "--cost-users", "1", "--anchors", "SAITS")
    assert other.returncode == 0 and ": kept from " not in other.stdout
