"""Peak memory of the batch job against the population size (issue 21's bar: the peak RSS for
100,000 users within 10% of that for 10,000).

Each run is ``uscope profile EVENTS.parquet --backend heuristic`` (MiniLM, default precision,
one torch thread, chunks of 256 users) in its own process, on a SIMULATED population of one day
(about 45 app uses a user) written as a user-sorted parquet, which the job reads in blocks of
users. Its peak is ``/usr/bin/time``'s maximum resident set size. A size's runs give a median;
``--jobs`` runs go at once (one a core), the largest population first, so that the sizes share
the machine's load.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section

SECTION = "profile-memory"
CHUNK_SIZE = 256


def simulated_parquet(n_users: int, work: Path) -> tuple[Path, int]:
    """A SIMULATED population of one day (about 45 app uses a user) as an event parquet."""
    from uscope.data import simulate
    from uscope.data.schema import save_events

    folder = work / f"sim{n_users}"
    population = simulate(n_users=n_users, days=1, seed=0, out_dir=folder, events_per_day=45)
    return save_events(population.events, folder / "events.parquet"), len(population.events)


def profile_peak(path: Path, out: Path) -> tuple[float, float]:
    """One job in a fresh process: (seconds, peak RSS in MB)."""
    command = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "uscope", "profile",
               str(path), "--out", str(out), "--backend", "heuristic", "--no-progress",
               "--threads", "1", "--chunk-size", str(CHUNK_SIZE)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed:\n{done.stderr[-3000:]}")
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return time.perf_counter() - start, peak_kb / 1024


def measure(populations: dict[int, tuple[Path, int]], runs: int, jobs: int
            ) -> dict[int, list[tuple[float, float]]]:
    """``runs`` jobs a size, ``jobs`` at a time, the largest size first."""
    tasks = [(n, run) for n in sorted(populations, reverse=True) for run in range(runs)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {task: pool.submit(profile_peak, populations[task[0]][0],
                                     populations[task[0]][0].with_name(f"profiles-{task[1]}.parquet"))
                   for task in tasks}
        return {n: [futures[(n, run)].result() for run in range(runs)] for n in populations}


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
    with tempfile.TemporaryDirectory(prefix="uscope-memory-") as tmp:
        populations = {n: simulated_parquet(n, Path(tmp)) for n in args.sizes}
        results = measure(populations, args.runs, args.jobs)
    rows = size_rows(populations, results)
    small, large = min(args.sizes), max(args.sizes)
    growth = (statistics.median(p for _, p in results[large]) /
              statistics.median(p for _, p in results[small]))
    from uscope.profile.encoder import ENCODE_BATCH_SIZE

    body = (
        f"Peak RSS of `uscope profile EVENTS.parquet --backend heuristic --threads 1 "
        f"--chunk-size {CHUNK_SIZE}` on **SIMULATED** populations (1 day, about 45 app uses a "
        f"user), the job reading the parquet in blocks of users and encoding "
        f"{ENCODE_BATCH_SIZE} profile texts a forward pass. Each run is its own process "
        f"(`/usr/bin/time`); {args.jobs} ran at once, the largest population first.\n\n"
        + markdown_table(rows) + "\n\n"
        f"The median peak at {large:,} users is **{growth:.2f}x** that at {small:,} "
        "(bar: within 1.10x).\n")
    print(body, flush=True)
    if args.no_write:
        print("(--quick/--no-write: not written to BENCHMARKS.md)")
    else:
        write_section(SECTION, "U-SCOPE profiling memory against the population size", body)


if __name__ == "__main__":
    main()
