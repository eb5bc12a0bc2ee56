"""The ablation table of benchmarks/bench_intent.py over several seeds: mean +- sd of each
metric, and on how many seeds each variant trails full PITuning on both macro scores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from generative.intent import intent_metrics

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _intent_report import ablation_rows

TRAILS = "trails full PITuning on Prec_m and Rec_m"


def one_hot_scores(pred: list[int], n_intents: int = 3) -> np.ndarray:
    return np.eye(n_intents)[pred]


def test_ablation_rows_average_seeds_and_count_where_a_variant_trails():
    y = np.array([0, 0, 1, 1, 2, 2])
    perfect = one_hot_scores([0, 0, 1, 1, 2, 2])
    half = one_hot_scores([0, 1, 1, 0, 2, 0])
    per_seed = [
        {"full PITuning": intent_metrics(y, perfect), "without IAT": intent_metrics(y, half)},
        {"full PITuning": intent_metrics(y, half), "without IAT": intent_metrics(y, perfect)},
    ]
    rows = {r["variant"]: r for r in ablation_rows(per_seed)}
    accuracy = [1.0, intent_metrics(y, half)["Prec_w"]]
    assert rows["full PITuning"]["Prec_w"] == (
        f"{np.mean(accuracy):.4f} ± {np.std(accuracy, ddof=1):.4f}")
    assert rows["full PITuning"][TRAILS] == "(reference)"
    assert rows["without IAT"][TRAILS] == "1 of 2 seeds"  # seed 0 trails, seed 1 leads


def test_ablation_rows_of_one_seed_print_the_values():
    y = np.array([0, 1, 2, 2])
    scores = one_hot_scores([0, 1, 2, 1])
    rows = ablation_rows([{"full PITuning": intent_metrics(y, scores),
                           "without pretraining": intent_metrics(y, scores)}])
    assert rows[1]["Prec_w"] == "0.7500"
    assert rows[1][TRAILS] == "0 of 1 seed"  # equal scores do not trail


def test_notes_of_another_dataset_say_where_its_settings_came_from():
    from types import SimpleNamespace

    from _intent_report import NOTES, notes

    assert notes(SimpleNamespace(dataset="netfp", events=None)) == NOTES.strip()
    other = notes(SimpleNamespace(dataset="foursquare-nyc", events=None))
    assert "netfp's validation split" in other and "intent-longtail-foursquare-nyc" in other


def _bench_intent(cache: Path, *extra: str) -> tuple[list[str], str]:
    """A quick bench_intent run on real netfp with a stage cache: its log lines and report."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_intent.py"), "--quick", "--no-write",
         "--max-users", "30", "--cache-dir", str(cache), *extra], check=False, cwd=REPO,
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    logs = [line for line in lines if line.startswith("[")]
    return logs, "\n".join(line for line in lines if not line.startswith("["))


def test_a_rerun_resumes_after_the_last_cached_stage(tmp_path):
    """--cache-dir: a run that stopped after one ablation seed resumes at the second, and a
    third run with nothing left to do reports what the second did."""
    cache = tmp_path / "cache"
    first, _ = _bench_intent(cache, "--ablation-seeds", "1")
    assert not any("cached in" in line for line in first)
    second, report = _bench_intent(cache, "--ablation-seeds", "2")
    cached = [line.split("] ")[1].split(":")[0] for line in second if "cached in" in line]
    assert cached == ["main", "ablation-seed0"]  # seed 1 trained now
    assert sum("teacher:" in line for line in second) == 4  # seed 1: full PITuning + 3 variants
    third, again = _bench_intent(cache, "--ablation-seeds", "2")
    assert not any("teacher:" in line for line in third)
    assert again == report
    assert "population tuning (seed 0)" in report  # labelled as if run whole
    changed, _ = _bench_intent(cache, "--ablation-seeds", "1", "--unlearn-steps", "3")
    assert not any("cached in" in line for line in changed)  # other settings: not reused


def test_scripts_built_on_bench_intent_describe_themselves_and_their_own_options():
    for script, own in (("bench_intent_longtail", "--folds"),
                        ("bench_intent_device", "--shift-pseudocount")):
        done = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{script}.py"), "-h"],
                              capture_output=True, text=True, timeout=120, check=True)
        first_line = (REPO / "benchmarks" / f"{script}.py").read_text().split("\n")[0]
        assert first_line.strip('"') in done.stdout  # its docstring, not bench_intent's
        assert f"{script}.py's own options:" in done.stdout and own in done.stdout
        assert "--teacher-steps" in done.stdout  # and the options it shares
