"""``benchmarks/bench_scale.py --quick`` runs every stage of the Tsinghua-size pipeline on a
small SIMULATED trace (each stage its own process) and leaves BENCHMARKS.md alone."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_scale_benchmark_runs_every_stage(tmp_path):
    before = hashlib.sha256((REPO / "BENCHMARKS.md").read_bytes()).hexdigest()
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_scale.py"), "--quick",
         "--work", str(tmp_path / "work")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    for stage in ("simulate:", "read_tsinghua:", "read events.parquet", "tensors:",
                  "profile (heuristic + MiniLM)"):
        assert stage in done.stdout
    assert "SIMULATED" in done.stdout and "not written to BENCHMARKS.md" in done.stdout
    assert "70 users, " in done.stdout and ", 0 failed" in done.stdout
    assert (tmp_path / "work" / "profiles.parquet").exists()
    assert hashlib.sha256((REPO / "BENCHMARKS.md").read_bytes()).hexdigest() == before
