"""The memory benchmarks in their quick modes, as a user runs them: ``bench_memory.py`` profiles
two SIMULATED populations, each job in its own process, and reports each one's peak and the
ratio; ``bench_encode_batch.py`` times MiniLM at several texts a forward pass and measures each
one's momentary memory. Neither touches BENCHMARKS.md. Also the high-water-mark helpers they
share (``benchmarks/_measure.py``)."""

from __future__ import annotations

import re
import sys

import numpy as np
from benchmark_runs import REPO, command, run
from benchmark_runs import benchmarks_digest as digest

from uscope.profile.encoder import ENCODE_BATCH_SIZE

sys.path.insert(0, str(REPO / "benchmarks"))
from _measure import reset_peak, rss_mb


def test_the_high_water_mark_restarts_and_sees_a_momentary_allocation():
    assert reset_peak()
    before = rss_mb()
    block = np.ones(200 * 2**20 // 8)  # 200 MiB, every page touched
    del block
    assert rss_mb() < before + 50  # handed back at once (a large block is its own mapping)
    assert 190 < rss_mb("VmHWM") - before < 260
    assert reset_peak() and rss_mb("VmHWM") < before + 50


def test_quick_memory_benchmark_reports_both_sizes(tmp_path):
    before = digest()
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
    assert digest() == before


def test_memory_benchmark_refuses_a_single_size(tmp_path):
    done = run([sys.executable, str(REPO / "benchmarks" / "bench_memory.py"), "--sizes", "500",
                "--no-write"], tmp_path)
    assert done.returncode == 2 and "two or more distinct --sizes" in done.stderr


def test_quick_encode_batch_benchmark_sees_the_batch_in_memory(tmp_path):
    before = digest()
    sizes = (4, ENCODE_BATCH_SIZE, 64)
    done = run(command("bench_encode_batch", None,
                       ("--batch-sizes", *map(str, sizes), "--precisions", "fp32")), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Real netfp: the heuristic profile texts of 150 devices" in done.stdout
    momentary = {}
    for size in sizes:
        label = f"{size} (default)" if size == ENCODE_BATCH_SIZE else str(size)
        row = re.search(rf"^\| fp32 \| {re.escape(label)} \| [\d.]+ \| \d+ \| (\d+) \|$",
                        done.stdout, re.MULTILINE)
        assert row, done.stdout
        momentary[size] = int(row.group(1))
    assert momentary[64] > momentary[4] + 10  # a wider pass holds more activations at once
    assert digest() == before
