"""Data layer speed: readers and tensor building on the real netfp file and a simulated population.

Run: python benchmarks/bench_data.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section

from uscope.data import TensorConfig, build_tensors, read_netfp, read_tsinghua, simulate

NETFP = Path(__file__).resolve().parents[2] / "shared" / "data" / "netfp" / "data0117_dev.csv"


def timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sim-users", type=int, default=200)
    args = parser.parse_args()
    rows = []

    seconds, (events, report) = timed(lambda: read_netfp(NETFP), args.repeats)
    rows.append({"step": "read_netfp (real, 44,401 rows)", "median s": f"{seconds:.2f}",
                 "rows/s": f"{report.rows_in / seconds:,.0f}",
                 "events/s": f"{len(events) / seconds:,.0f}"})
    config = TensorConfig(slot_minutes=60, n_slots=24)
    seconds, batch = timed(lambda: build_tensors(events, config), args.repeats)
    rows.append({"step": f"build_tensors netfp (real) {batch.shape}", "median s": f"{seconds:.2f}",
                 "events/s": f"{len(events) / seconds:,.0f}"})

    with tempfile.TemporaryDirectory() as tmp:
        seconds, population = timed(lambda: simulate(n_users=args.sim_users, days=7, seed=0,
                                                     out_dir=tmp), 1)
        rows.append({"step": f"simulate {args.sim_users} users x 7 days (simulated)",
                     "median s": f"{seconds:.2f}",
                     "events/s": f"{len(population.events) / seconds:,.0f}"})
        seconds, data = timed(lambda: read_tsinghua(tmp), args.repeats)
        rows.append({"step": "read_tsinghua (simulated trace)", "median s": f"{seconds:.2f}",
                     "rows/s": f"{data.report.rows_in / seconds:,.0f}",
                     "events/s": f"{len(data.events) / seconds:,.0f}"})
        seconds, batch = timed(lambda: build_tensors(data.events, TensorConfig()), args.repeats)
        rows.append({"step": f"build_tensors 15 min x 192 (simulated) {batch.shape}",
                     "median s": f"{seconds:.2f}",
                     "events/s": f"{len(data.events) / seconds:,.0f}"})

    body = markdown_table(rows, ["step", "median s", "rows/s", "events/s"])
    body += (f"\n\nMedians of {args.repeats} runs (simulation: one run). netfp is real data; "
             "the Tsinghua-format trace is simulated.\n")
    print(body)
    write_section("data", "Data layer: readers and tensors", body)


if __name__ == "__main__":
    main()
