"""Peak memory of the batch job against the population size (issue 21's bar: the peak RSS for
100,000 users within 10% of that for 10,000).

Each run is ``uscope profile EVENTS.parquet --backend heuristic`` (MiniLM at this CPU's default
precision, one torch thread, the job's default chunks of users) in its own process, on a
SIMULATED population of one day (about 45 app uses a user) written as a user-sorted parquet,
which the job reads in blocks of users. Its peak is GNU time's (``/usr/bin/time``) maximum
resident set size. A size's runs give a median; ``--jobs`` runs go at once (one a core), queued
largest size first and alternating between sizes, so that each size's runs share the machine
with the others' alike.

Run: python benchmarks/bench_memory.py [--sizes 10000 100000] [--runs 3] [--jobs 2] [--quick]
``--quick``: sizes 300 and 1,000, one run each; ``--no-write`` (implied by ``--quick``) leaves
BENCHMARKS.md alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import simulated_parquet
from _report import markdown_table, publish

SECTION = "profile-memory"
GNU_TIME = Path("/usr/bin/time")


def profile_peak(path: Path, out: Path) -> tuple[float, float]:
    """One job in a fresh process: (seconds, peak RSS in MB)."""
    command = [str(GNU_TIME), "-f", "%M", sys.executable, "-m", "uscope", "profile",
               str(path), "--out", str(out), "--backend", "heuristic", "--no-progress",
               "--threads", "1"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed:\n{done.stderr[-3000:]}")
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return time.perf_counter() - start, peak_kb / 1024


def measure(populations: dict[int, tuple[Path, int]], runs: int, jobs: int
            ) -> dict[int, list[tuple[float, float]]]:
    """``runs`` jobs a size, ``jobs`` at a time: largest size first, alternating between sizes
    (L0 S0 L1 S1 ...). The first failure stops the queue."""
    tasks = [(n, run) for run in range(runs) for n in sorted(populations, reverse=True)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {}
        for n, run in tasks:
            path = populations[n][0]
            futures[n, run] = pool.submit(profile_peak, path,
                                          path.with_name(f"profiles-{run}.parquet"))
        done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            pool.shutdown(cancel_futures=True)
            raise failed[0].exception()
        return {n: [futures[n, run].result() for run in range(runs)] for n in populations}


def size_rows(populations: dict[int, tuple[Path, int]],
              results: dict[int, list[tuple[float, float]]]) -> list[dict]:
    rows = []
    for n in sorted(populations):
        seconds = statistics.median(s for s, _ in results[n])
        peaks = [peak for _, peak in results[n]]
        rows.append({"users": f"{n:,}", "rows": f"{populations[n][1]:,}",
                     "runs": len(peaks), "median seconds": f"{seconds:,.0f}",
                     "users/s": f"{n / seconds:.0f}",
                     "peak RSS MB, median": f"{statistics.median(peaks):,.0f}",
                     "peak RSS MB, each run": ", ".join(f"{p:,.0f}" for p in peaks)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3, help="jobs per size (median)")
    parser.add_argument("--jobs", type=int, default=2, help="jobs at once")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.runs, args.no_write = [300, 1000], 1, True
    if len(set(args.sizes)) < 2 or args.runs < 1 or args.jobs < 1:
        parser.error("give two or more distinct --sizes, and --runs and --jobs of at least 1")
    if not GNU_TIME.exists():
        parser.error(f"{GNU_TIME} (GNU time) is missing: install it (Debian: apt install time)")
    with tempfile.TemporaryDirectory(prefix="uscope-memory-") as tmp:
        populations = {n: simulated_parquet(n, Path(tmp)) for n in args.sizes}
        results = measure(populations, args.runs, args.jobs)
    rows = size_rows(populations, results)
    small, large = min(args.sizes), max(args.sizes)
    growth = (statistics.median(p for _, p in results[large]) /
              statistics.median(p for _, p in results[small]))
    from uscope.profile import JobConfig
    from uscope.profile.encoder import ENCODE_BATCH_SIZE, default_precision

    body = (
        "Peak RSS of `uscope profile EVENTS.parquet --backend heuristic --threads 1` on "
        "**SIMULATED** populations (1 day, about 45 app uses a user), the job reading the "
        f"parquet in blocks of users, profiling {JobConfig().chunk_size} users a chunk and "
        f"encoding {ENCODE_BATCH_SIZE} profile texts a forward pass with MiniLM in "
        f"{default_precision()} (this CPU's default). Each run is its own process (GNU time); "
        f"{args.jobs} ran at once, queued largest size first, alternating between sizes.\n\n"
        + markdown_table(rows) + "\n\n"
        f"The median peak at {large:,} users is **{growth:.2f}x** that at {small:,} "
        "(bar: within 1.10x).\n")
    publish(SECTION, "U-SCOPE profiling memory against the population size", body,
            write=not args.no_write)


if __name__ == "__main__":
    main()
