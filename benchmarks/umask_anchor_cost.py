"""What one seed of each learned anchor costs on this machine, measured (``bench_umask_months
--anchor-cost``): why a row of the umask-months tables is there or is not.

Each (anchor, batch size) runs in a process of its own on the run's tensors and the first
seed's split: one training epoch over the training users, with the validation pass early
stopping makes every epoch (CSDI's scores every diffusion step); one completion of a few test
users from the long-term evidence (CSDI: one sample, all its reverse diffusion steps); and the
process's peak RSS, read when it ends, so a process the machine kills still reports it. One
seed of the reported budget then needs ``epochs x epoch + tasks x test users x samples x
completion``: an upper bound when early stopping ends training sooner. Each finished row is
kept in the work folder, so ``--reuse`` resumes a long run where it stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from _report import markdown_table
from bench_umask import TASKS, split_users
from umask_anchors import anchor_inputs, anchor_samples, device_name, fit_anchor, gpu_peak
from umask_data import BenchData, Horizon, save_bench_data

from generative.train import split_validation

TIMED_TASK = "long_term"


def seed_hours(epoch_s: float, completion_s: float, epochs: int, tasks: int, users: int,
               samples: int) -> float:
    """Hours of one seed: ``epochs`` epochs, then ``samples`` completions of ``users`` test
    users on each of ``tasks`` tasks."""
    return (epochs * epoch_s + tasks * users * samples * completion_s) / 3600


def row_path(workdir: str | Path, name: str, batch: int | str) -> Path:
    """The file of one (anchor, batch size): the worker's timings, then the whole row."""
    return Path(workdir) / f"cost-{name}-{batch}.json"


def run_cost_worker(data: BenchData, layout: Horizon, args) -> None:
    """The ``--cost-worker NAME BATCH`` process: ``measure`` into its row file."""
    name, batch = args.cost_worker
    row_path(args.workdir, name, batch).write_text(
        json.dumps(measure(data, layout, name, int(batch), args)))


def measure(data: BenchData, layout: Horizon, name: str, batch: int, args) -> dict:
    """In the worker: one epoch of ``name`` at ``batch`` and one completion of the first
    ``--cost-users`` test users, timed."""
    try:   # if memory runs out, the machine should kill this process, not another
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass
    seed = args.seeds[0]
    V, O = torch.from_numpy(data.values), torch.from_numpy(data.observed)
    split = split_users(V.shape[0], seed, args.validation)
    test, train = split
    val_keep, evidence = anchor_inputs(layout.tasks(), O, split, seed)
    model, epoch_s = fit_anchor(name, V[train], O[train], val_keep, seed, epochs=1,
                                patience=args.anchor_patience, val_fraction=args.val_fraction,
                                device=args.anchor_device, batch_size=batch)
    k = min(args.cost_users, len(test))
    seen = evidence[TIMED_TASK][1][:k]
    t0 = time.perf_counter()
    anchor_samples(name, model, V[test[:k]], seen, n_samples=1)
    return {"epoch_seconds": epoch_s, "completion_seconds": (time.perf_counter() - t0) / k,
            "timed_users": k, "device": device_name(args.anchor_device),
            **gpu_peak(args.anchor_device)}


def run_worker(argv: list[str]) -> tuple[int, float, float]:
    """Run ``argv`` to its end: (exit code, or minus the signal that ended it; peak RSS in
    MiB; seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, time.perf_counter() - t0


def outcome(code: int, seconds: float) -> str:
    if code == 0:
        return "measured"
    if code < 0:
        return f"killed by {signal.Signals(-code).name} after {seconds:.0f} s"
    return f"failed (exit {code}) after {seconds:.0f} s"


def read_row(path: Path) -> dict:
    """A row file of an earlier run; {} when there is none or it was cut short."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def cost_rows(data: BenchData, args, argv: list[str], script: str, data_key: dict
              ) -> list[dict]:
    """Every (anchor, batch size) of ``args`` in a worker process of ``script`` (with
    ``argv``), one after another. With ``--reuse``, a row finished in ``--workdir`` on the same
    data (``data_key``) and timing options is kept."""
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    tensors = work / "cost-tensors.npz"     # written afresh when a worker is needed
    tensors.unlink(missing_ok=True)
    setting = {"data": data_key, "seed": args.seeds[0], "validation": args.validation,
               "threads": args.threads, "device": device_name(args.anchor_device),
               "memory_gib": round(memory_gib()), "torch": torch.__version__,
               "val_fraction": args.val_fraction, "cost_users": args.cost_users}
    rows = []
    for name in args.anchors:
        for batch in args.anchor_batch_size:
            path = row_path(work, name, batch)
            kept = read_row(path) if args.reuse else {}
            if kept.get("setting") == setting and not kept["outcome"].startswith("failed"):
                rows.append(kept)
                print(f"{name} at batch {batch}: kept from {path}", flush=True)
                continue
            path.unlink(missing_ok=True)
            if not tensors.exists():
                save_bench_data(data, str(tensors))
            code, peak_mb, seconds = run_worker(
                [sys.executable, script, *argv, "--tensors", str(tensors),
                 "--workdir", str(work), "--cost-worker", name, str(batch)])
            row = {"anchor": name, "batch": batch, "outcome": outcome(code, seconds),
                   "peak_rss_mb": peak_mb, **(json.loads(path.read_text()) if code == 0 else {}),
                   "setting": setting}
            path.write_text(json.dumps(row))
            rows.append(row)
            print(f"{name} at batch {batch}: {row['outcome']}", flush=True)
    tensors.unlink(missing_ok=True)
    return rows


def render(data: BenchData, rows: list[dict], args) -> str:
    """The header, the table of ``cost_rows`` and how to read it."""
    seed = args.seeds[0]
    test, train = split_users(data.values.shape[0], seed, args.validation)
    n_val = (len(split_validation(len(train), args.val_fraction, seed)[1])
             if args.val_fraction > 0 else 0)
    table, fastest = [], {}
    on_gpu = any("peak_gpu_mb" in r for r in rows)
    for r in rows:
        samples = args.anchor_samples if r["anchor"] == "CSDI" else 1
        row = {"anchor": r["anchor"], "batch size": r["batch"], "outcome": r["outcome"],
               "device": r.get("device", ""), "one epoch (s)": "",
               "one completion (s per user)": "", "peak RSS (MiB)": f"{r['peak_rss_mb']:.0f}"}
        if on_gpu:
            row["peak GPU (MiB)"] = f"{r['peak_gpu_mb']:.0f}" if "peak_gpu_mb" in r else ""
        row.update({"samples per user": samples, "one seed at the budget (h)": ""})
        if "epoch_seconds" in r:
            hours = seed_hours(r["epoch_seconds"], r["completion_seconds"], args.anchor_epochs,
                               len(TASKS), len(test), samples)
            row.update({"one epoch (s)": f"{r['epoch_seconds']:.3g}",
                        "one completion (s per user)": f"{r['completion_seconds']:.3g}",
                        "one seed at the budget (h)": f"{hours:.3g}"})
            if hours < fastest.get(r["anchor"], (float("inf"),))[0]:
                fastest[r["anchor"]] = (hours, r["batch"])
        table.append(row)
    c, t, h, w = data.values.shape[1:]
    timed = min(args.cost_users, len(test))
    validation = (f"({n_val} of them validate every epoch, inside its time)" if n_val
                  else "(no validation)")
    reading = [f"{name} {hours:.3g} h (batch {batch})" for name, (hours, batch) in
               fastest.items()]
    ended = [f"{r['anchor']} at batch {r['batch']}: {r['outcome']}, at "
             f"{r['peak_rss_mb'] / 1024:.1f} GiB" for r in rows if r["outcome"] != "measured"]
    return (f"**{data.name}**: tensor (C, T, H, W) = ({c}, {t}, {h}, {w}), {c * h * w} features "
            f"a slot for the anchors; seed {seed}'s split: {len(train)} training users "
            f"{validation}, {len(test)} test users. Each anchor and batch size in a process of "
            f"its own, {args.threads} torch thread(s), {memory_gib():.0f} GiB of memory. One "
            f"completion: the first {timed} test users from the `{TIMED_TASK}` evidence, one "
            f"sample. One seed at the reported budget: {args.anchor_epochs} epochs (early "
            f"stopping may end sooner), then {len(TASKS)} tasks x {len(test)} test users x the "
            "samples per user.\n\n" + markdown_table(table) + "\n\n"
            + "One seed at the budget, the fastest batch size measured: "
            + ("; ".join(reading) or "none measured") + "."
            + (" Ended by the machine or failed: " + "; ".join(ended) + " (peak RSS)."
               if ended else "")
            + " A worker raises its own OOM score, so that, when memory runs out, the kernel "
            "ends it and not another process.\n")
