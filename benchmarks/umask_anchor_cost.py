"""What one seed of each learned anchor costs on this machine, measured (``bench_umask_months
--anchor-cost``): why a row of the umask-months tables is there or is not.

Each (anchor, batch size) runs in a process of its own on the run's tensors and the first
seed's split: one training epoch over the training users, with the validation pass early
stopping makes every epoch (CSDI's scores every diffusion step); one completion of a few test
users from the long-term evidence (CSDI: one sample, all its reverse diffusion steps); and the
process's peak RSS, read when it ends, so a process the machine kills still reports it. One
seed of the reported budget then needs ``epochs x epoch + tasks x test users x samples x
completion``: an upper bound when early stopping ends training sooner.
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
from bench_umask import split_users
from umask_anchors import anchor_inputs, anchor_samples, device_name, fit_anchor
from umask_data import BenchData, Horizon, save_bench_data

TIMED_TASK = "long_term"


def seed_hours(epoch_s: float, completion_s: float, epochs: int, tasks: int, users: int,
               samples: int) -> float:
    """Hours of one seed: ``epochs`` epochs, then ``samples`` completions of ``users`` test
    users on each of ``tasks`` tasks."""
    return (epochs * epoch_s + tasks * users * samples * completion_s) / 3600


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
    gpu = args.anchor_device.startswith("cuda")
    return {"epoch_seconds": epoch_s, "completion_seconds": (time.perf_counter() - t0) / k,
            "timed_users": k, "device": device_name(args.anchor_device),
            **({"peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20} if gpu else {})}


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


def cost_rows(data: BenchData, args, argv: list[str], script: str) -> list[dict]:
    """Every (anchor, batch size) of ``args`` in a worker process of ``script`` (with
    ``argv``), one after another."""
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    tensors = work / "tensors.npz"
    save_bench_data(data, str(tensors))
    rows = []
    for name in args.anchors:
        for batch in args.anchor_batch_sizes:
            result = work / f"cost-{name}-{batch}.json"
            result.unlink(missing_ok=True)
            code, peak_mb, seconds = run_worker(
                [sys.executable, script, *argv, "--tensors", str(tensors),
                 "--workdir", str(work), "--cost-worker", name, str(batch)])
            row = {"anchor": name, "batch": batch, "outcome": outcome(code, seconds),
                   "peak_rss_mb": peak_mb}
            if code == 0:
                row.update(json.loads(result.read_text()))
            rows.append(row)
            print(f"{name} at batch {batch}: {row['outcome']}", flush=True)
    return rows


def render(data: BenchData, layout: Horizon, rows: list[dict], args) -> str:
    """The header and the table of ``cost_rows``."""
    test, train = split_users(data.values.shape[0], args.seeds[0], args.validation)
    n_val = max(1, round(len(train) * args.val_fraction))   # generative.train.split_validation
    tasks = len(layout.tasks())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    table = []
    for r in rows:
        samples = args.anchor_samples if r["anchor"] == "CSDI" else 1
        row = {"anchor": r["anchor"], "batch size": r["batch"], "outcome": r["outcome"],
               "device": r.get("device", ""), "one epoch, with validation (s)": "",
               "one completion (s per user)": "", "peak RSS (MB)": f"{r['peak_rss_mb']:.0f}",
               "samples per user": samples, "one seed at the budget (h)": ""}
        if "epoch_seconds" in r:
            hours = seed_hours(r["epoch_seconds"], r["completion_seconds"], args.anchor_epochs,
                               tasks, len(test), samples)
            row.update({"one epoch, with validation (s)": f"{r['epoch_seconds']:.3g}",
                        "one completion (s per user)": f"{r['completion_seconds']:.3g}",
                        "one seed at the budget (h)": f"{hours:.3g}"})
        table.append(row)
    c, t, h, w = data.values.shape[1:]
    timed = min(args.cost_users, len(test))
    return (f"**{data.name}**: tensor (C, T, H, W) = ({c}, {t}, {h}, {w}), {c * h * w} features "
            f"a slot for the anchors; seed {args.seeds[0]}'s split: {len(train)} training users "
            f"({n_val} of them validate every epoch), {len(test)} test users. Each anchor and "
            f"batch size in a process of its own, {args.threads} torch thread(s), "
            f"{memory:.0f} GiB of memory. One completion: the first {timed} test users from "
            f"the `{TIMED_TASK}` evidence, one sample. One seed at the reported budget: "
            f"{args.anchor_epochs} epochs (early stopping may end sooner), then {tasks} tasks x "
            f"{len(test)} test users x the samples per user.\n\n" + markdown_table(table) + "\n")
