"""Data layer speed: a registered dataset's reader and its tensors, and the Tsinghua-format
reader on a simulated population.

Run: python benchmarks/bench_data.py [--dataset netfp] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import (
    NEEDS,
    add_dataset_args,
    load_for_benchmark,
    parse_args,
    report,
    tensor_config,
)
from _report import markdown_table

from uscope.data import TensorConfig, build_tensors, read_tsinghua, simulate


def timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sim-users", type=int, default=200)
    add_dataset_args(parser, default="netfp")
    args = parse_args(parser, argv, quick={"repeats": 1, "sim_users": 10})
    rows = []

    seconds, data = timed(lambda: load_for_benchmark(args, NEEDS["bench_data"][0], "bench_data"),
                          args.repeats)
    events, rows_in = data.events, data.report.rows_in
    rows.append({"step": f"load_dataset {data.label} ({rows_in:,} rows)",
                 "median s": f"{seconds:.2f}", "rows/s": f"{rows_in / seconds:,.0f}",
                 "events/s": f"{len(events) / seconds:,.0f}"})
    config = tensor_config(data)
    seconds, batch = timed(lambda: build_tensors(events, config), args.repeats)
    rows.append({"step": f"build_tensors {data.label}, {config.slot_minutes} min x "
                         f"{config.n_slots} {batch.shape}", "median s": f"{seconds:.2f}",
                 "events/s": f"{len(events) / seconds:,.0f}"})

    with tempfile.TemporaryDirectory() as tmp:
        seconds, population = timed(lambda: simulate(n_users=args.sim_users, days=7, seed=0,
                                                     out_dir=tmp), 1)
        rows.append({"step": f"simulate {args.sim_users} users x 7 days (SIMULATED)",
                     "median s": f"{seconds:.2f}",
                     "events/s": f"{len(population.events) / seconds:,.0f}"})
        seconds, sim = timed(lambda: read_tsinghua(tmp), args.repeats)
        rows.append({"step": "read_tsinghua (SIMULATED trace)", "median s": f"{seconds:.2f}",
                     "rows/s": f"{sim.report.rows_in / seconds:,.0f}",
                     "events/s": f"{len(sim.events) / seconds:,.0f}"})
        seconds, batch = timed(lambda: build_tensors(sim.events, TensorConfig()), args.repeats)
        rows.append({"step": f"build_tensors 15 min x 192 (SIMULATED) {batch.shape}",
                     "median s": f"{seconds:.2f}",
                     "events/s": f"{len(sim.events) / seconds:,.0f}"})

    body = markdown_table(rows, ["step", "median s", "rows/s", "events/s"])
    body += (f"\n\nMedians of {args.repeats} runs (simulation: one run). {data.label} is read "
             "by its registered reader; the Tsinghua-format trace is simulated.\n")
    report(args, data, "data", "Data layer: readers and tensors", body)


if __name__ == "__main__":
    main()
