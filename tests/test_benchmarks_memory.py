"""``benchmarks/bench_memory.py --quick`` profiles two SIMULATED populations, each job in its
own process, reports each one's peak and the ratio, and leaves BENCHMARKS.md alone."""

from __future__ import annotations

import hashlib
import re

from benchmark_runs import REPO, command, run


def test_quick_memory_benchmark_reports_both_sizes(tmp_path):
    before = hashlib.sha256((REPO / "BENCHMARKS.md").read_bytes()).hexdigest()
    done = run(command("bench_memory", None, ("--jobs", "1")), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SIMULATED" in done.stdout and "not written to BENCHMARKS.md" in done.stdout
    peaks = {}
    for users in ("300", "1,000"):
        row = re.search(rf"^\| {users} \| [\d,]+ \| 1 \| [\d,]+ \| \d+ \| ([\d,]+) \| ([\d,]+) \|$",
                        done.stdout, re.MULTILINE)
        assert row, done.stdout
        assert row.group(1) == row.group(2)  # one run: its peak is the median
        peaks[users] = int(row.group(1).replace(",", ""))
    assert all(200 < peak < 4000 for peak in peaks.values())  # MiniLM loaded, nothing absurd
    ratio = re.search(r"\*\*(\d+\.\d\d)x\*\*", done.stdout)
    assert ratio and abs(float(ratio.group(1)) - peaks["1,000"] / peaks["300"]) < 0.01
    assert hashlib.sha256((REPO / "BENCHMARKS.md").read_bytes()).hexdigest() == before
