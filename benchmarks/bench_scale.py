"""Scale: a Tsinghua-size trace (SIMULATED) written, read and tensorised end to end, with the
time and peak memory of every stage.

The real Tsinghua App Usage trace holds 4.17 M rows for 1,000 users over 7 days (596 app uses
per user per day); its trace file is not available here, so ``simulate(events_per_day=596)``
writes a SIMULATED one of that size and density in the same format. Each stage runs in a
process of its own, so its peak RSS is its own (interpreter and imports included; "start" is
the RSS once they are loaded). Stages, in order (``STAGES``):

- ``simulate``: generate and write the Tsinghua-format files, read them back (as ``simulate``
  always does), save ``events.parquet``;
- ``read-trace``: ``read_tsinghua`` on the written trace, the path a real trace would take;
- ``read-parquet``: ``events.parquet`` through the generic reader (``uscope read``);
- ``tensors``: load the events, ``build_tensors`` (15 min x 192 slots), save the ``.npz``; the
  build's own peak is measured over the loaded table and compared with the tensors' size;
- ``profile``: heuristic profiles and MiniLM embeddings of every user, the job reading
  ``events.parquet`` in blocks of users (``uscope profile events.parquet --backend heuristic``).

A stage is one function decorated with ``@stage`` that takes ``(work_dir, args)`` and returns
what it measured.

Run: python benchmarks/bench_scale.py [--users 1000] [--days 7] [--events-per-day 596]
     [--stages simulate read-trace read-parquet tensors profile] [--work DIR] [--quick]
     [--no-write]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import reset_peak, rss_mb
from _report import markdown_table, write_section

SECTION = "scale"
RESULT = "RESULT "  # a stage process prints its measurements on one line after this
TRACE_DIR, EVENTS, TENSORS = "trace", "events.parquet", "tensors.npz"

# name -> (what the table calls it, function(work dir, args) -> measurements)
STAGES: dict[str, tuple[str, Callable[[Path, argparse.Namespace], dict]]] = {}


def stage(name: str, label: str):
    """Register a stage: it runs alone in a fresh process, after the stages registered before
    it, and returns a dict (``seconds``, ``rows`` and anything for the notes)."""
    def register(function):
        STAGES[name] = (label, function)
        return function
    return register


# ------------------------------------------------------------------------------ stages

@stage("simulate", "simulate: generate + write the Tsinghua files, read back, save parquet")
def simulate_trace(work: Path, args: argparse.Namespace) -> dict:
    from uscope.data import save_events, simulate

    module = importlib.import_module("uscope.data.simulate")
    marks: dict[str, float] = {}
    read_back = module.read_tsinghua

    def timed_read(*a, **k):  # simulate reads its files back: time the writing apart
        marks["written"] = time.perf_counter()
        return read_back(*a, **k)

    start = time.perf_counter()
    with mock.patch.object(module, "read_tsinghua", timed_read):
        population = simulate(n_users=args.users, days=args.days, seed=args.seed,
                              out_dir=work / TRACE_DIR, events_per_day=args.events_per_day)
    read_done = time.perf_counter()
    save_events(population.events, work / EVENTS)
    end = time.perf_counter()
    rows = len(population.events)
    trace_mb = (work / TRACE_DIR / "App_Usage_Trace.txt").stat().st_size / 2**20
    return {"seconds": end - start, "rows": rows,
            "detail": f"write {marks['written'] - start:.1f} s ({trace_mb:.0f} MB of text), "
                      f"read back {read_done - marks['written']:.1f} s, "
                      f"parquet {end - read_done:.1f} s; "
                      f"{rows / (args.users * args.days):.0f} rows per user-day"}


@stage("read-trace", "read_tsinghua: the written trace (as a real one would be read)")
def read_trace(work: Path, args: argparse.Namespace) -> dict:
    from uscope.data import read_tsinghua

    start = time.perf_counter()
    data = read_tsinghua(work / TRACE_DIR, n_location_categories=8, seed=args.seed)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(data.events),
            "detail": f"{data.report.rows_in / seconds:,.0f} rows/s"}


@stage("read-parquet", "read events.parquet (generic reader, as `uscope read`)")
def read_parquet(work: Path, args: argparse.Namespace) -> dict:
    from uscope.data.datasets import read_any

    start = time.perf_counter()
    loaded = read_any(work / EVENTS)
    seconds = time.perf_counter() - start
    table_mb = loaded.events.memory_usage(deep=True).sum() / 2**20
    return {"seconds": seconds, "rows": len(loaded.events),
            "detail": f"{len(loaded.events) / seconds:,.0f} rows/s; the table holds "
                      f"{table_mb:.0f} MB"}


@stage("tensors", "tensors: load events, build_tensors 15 min x 192, save .npz")
def tensors(work: Path, args: argparse.Namespace) -> dict:
    from uscope.data import TensorConfig, build_tensors, load_events

    start = time.perf_counter()
    events = load_events(work / EVENTS)
    loaded_at, loaded_mb, load_peak = time.perf_counter(), rss_mb(), rss_mb("VmHWM")
    exact = reset_peak()  # from here VmHWM is the build's (and the save's) peak
    batch = build_tensors(events, TensorConfig(slot_minutes=15, n_slots=192))
    built_at = time.perf_counter()
    build_peak = rss_mb("VmHWM") - loaded_mb if exact else float("nan")
    batch.save(work / TENSORS)
    end = time.perf_counter()
    size = (batch.values.nbytes + batch.observed_mask.nbytes) / 2**20
    return {"seconds": end - start, "rows": len(events), "tensor_mb": size,
            "build_peak_mb": build_peak, "peak_mb": max(load_peak, rss_mb("VmHWM")),
            "detail": f"load {loaded_at - start:.1f} s, build {built_at - loaded_at:.1f} s, "
                      f"save {end - built_at:.1f} s; X {batch.shape} + mask = {size:.0f} MB "
                      f"float32; build peak {build_peak:.0f} MB over the loaded table "
                      f"({build_peak / size:.1f}x the tensors)"}


@stage("profile", "profile (heuristic + MiniLM): events.parquet streamed in blocks of users")
def profile_heuristic(work: Path, args: argparse.Namespace) -> dict:
    from uscope.profile import JobConfig, ProfileEncoder, make_backend, run_profile_job

    encoder = ProfileEncoder()  # loaded before the clock starts, as a long job would
    out = work / "profiles.parquet"
    if out.exists():
        out.unlink()
    start = time.perf_counter()
    summary = run_profile_job(work / EVENTS, out, make_backend("heuristic"), encoder,
                              JobConfig(chunk_size=256))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": summary.n_users,
            "detail": f"{summary.n_users} users, {summary.n_users / seconds:.0f} users/s, "
                      f"{summary.n_failed} failed; encoder {encoder.label}"}


# ------------------------------------------------------------------------------ driver

def run_stage(name: str, work: Path, args: argparse.Namespace) -> None:
    """In a stage process: run one stage and print its measurements."""
    start_mb = rss_mb()
    result = STAGES[name][1](work, args)
    result["start_mb"] = start_mb
    result.setdefault("peak_mb", rss_mb("VmHWM"))  # a stage that resets the peak reports it
    print(RESULT + json.dumps(result), flush=True)


def stage_argv(name: str, work: Path, args: argparse.Namespace) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--stage-process", name,
            "--work", str(work), "--users", str(args.users), "--days", str(args.days),
            "--events-per-day", str(args.events_per_day), "--seed", str(args.seed)]


def measure(name: str, work: Path, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(stage_argv(name, work, args), capture_output=True, text=True,
                          env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        sys.exit(f"stage {name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT):])


def table(results: dict[str, dict]) -> str:
    rows = [{"stage": STAGES[name][0], "rows": f"{r['rows']:,}", "seconds": f"{r['seconds']:.1f}",
             "peak RSS MB": f"{r['peak_mb']:,.0f}", "start MB": f"{r['start_mb']:.0f}",
             "detail": r["detail"]} for name, r in results.items()]
    return markdown_table(rows, ["stage", "rows", "seconds", "peak RSS MB", "start MB",
                                 "detail"])


def main(argv: list[str] | None = None) -> None:
    from uscope.data.simulate import TSINGHUA_EVENTS_PER_DAY

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--events-per-day", type=float, default=TSINGHUA_EVENTS_PER_DAY,
                        help="density of the SIMULATED trace (596: the real Tsinghua trace)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the trace, parquet and tensors here (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="70 users x 2 days; print only")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--stage-process", choices=list(STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage_process:
        run_stage(args.stage_process, args.work, args)
        return
    if args.quick:
        args.users, args.days = min(args.users, 70), min(args.days, 2)
    work = args.work or Path(tempfile.mkdtemp(prefix="uscope-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        for name in [n for n in STAGES if n in args.stages]:
            results[name] = measure(name, work, args)
            print(f"{name}: {results[name]['seconds']:.1f} s, peak "
                  f"{results[name]['peak_mb']:,.0f} MB", flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    rows = results[next(iter(results))]["rows"]
    body = (f"**SIMULATED data** (the real trace file is not available): `simulate("
            f"n_users={args.users}, days={args.days}, events_per_day={args.events_per_day:g}, "
            f"seed={args.seed})`, {rows:,} rows, the density of the real Tsinghua trace "
            f"(4.17 M rows for 1,000 users x 7 days).\n\n" + table(results) + "\n\n"
            "Each stage runs in its own process: peak RSS is that stage's alone, the "
            "interpreter and imports included (start MB). One CPU thread.\n")
    print(body)
    complete = list(results) == list(STAGES)
    if args.quick or args.no_write or not complete:
        why = "quick run" if args.quick else "print only" if args.no_write else "some stages"
        print(f"(not written to BENCHMARKS.md: {why})")
        return
    write_section(SECTION, "Scale: a Tsinghua-size trace end to end (SIMULATED)", body)


if __name__ == "__main__":
    main()
