"""U-MASK + DiT over months of real behaviour: long horizons, space, cold start, RQ4, uncertainty.

The U-MASK paper's Tables 1-6 on weeks of check-ins (issue 19): slots of a few hours over
``--weeks`` weeks, cells from the places' coordinates (a lat/lon grid or k-means place clusters,
eq. 1), and the tasks in days and weeks: the next day, the last two weeks, and cold start (the
last two weeks from evidence worth a few days). Per seed, on the same held-out users, targets
and evidence: U-MASK with the U-SCOPE h_u, with h_u replaced by noise and with the stand-in
embedding (RQ4), the fixed-mask control and its matched budget, the PyPOTS anchors (SAITS,
PatchTST, CSDI), historical average, weekly seasonal naive and the population mean; RMSE, MAE,
and for sampled completions CRPS and 50% / 90% interval coverage.

    python benchmarks/bench_umask_months.py --validation --spatial latlon --steps 1000 --seeds 0
    python benchmarks/bench_umask_months.py --seeds 0 1 2 --jobs 3          # the reported run
    python benchmarks/bench_umask_months.py --quick                         # smoke run
    python benchmarks/bench_umask_months.py --anchor-cost --anchors SAITS PatchTST CSDI \
        --anchor-batch-size 32 4 --threads 2           # what one anchor seed costs here

Writes the `umask-months` section of BENCHMARKS.md (another dataset: `umask-months-<name>`);
`--anchor-cost` writes `umask-anchor-cost` (``umask_anchor_cost``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _data import NEEDS, add_dataset_args, load_for_benchmark, parse_args, quick_banner, report
from bench_umask import CONTROL, TASKS, split_users, train_model
from umask_anchor_cost import cost_rows, run_cost_worker
from umask_anchor_cost import render as render_cost
from umask_anchors import (
    ANCHORS,
    BATCH_SIZE,
    anchor_inputs,
    anchor_samples,
    device_name,
    fit_anchor,
    gpu_peak,
)
from umask_data import (
    BenchData,
    Horizon,
    load_bench_data,
    months_data,
    noise_embedding,
    save_bench_data,
)
from umask_months_report import NOISE, STANDIN, render

from generative.evaluate import compare, sample_errors
from generative.standin import histogram_embedding
from generative.uncertainty import sample_scores


def layout_of(args) -> Horizon:
    return Horizon(weeks=args.weeks, slot_hours=args.slot_hours, spatial=args.spatial,
                   grid=tuple(args.grid), long_weeks=args.long_weeks, cold_days=args.cold_days)


def rq4_embeddings(data: BenchData, layout: Horizon, seed: int) -> dict[str, torch.Tensor]:
    """The h_u of the RQ4 rows: noise of h_u's moments, and the behaviour-histogram stand-in."""
    standin = histogram_embedding(data.values, list(range(data.values.shape[1])),
                                  layout.history_slots)
    return {NOISE: torch.from_numpy(noise_embedding(data.h, seed)),
            STANDIN: torch.from_numpy(standin)}


def score_anchor(samples: torch.Tensor, values, target, groups) -> dict:
    out = sample_errors(samples, values, target, groups)
    if samples.shape[0] > 1:
        for g, scores in sample_scores(samples, values, target, groups).items():
            out[g].update(scores)
    return out


def umask_rows(data: BenchData, layout: Horizon, seed: int, args, split, out: dict) -> None:
    """U-MASK, its RQ4 variants, the controls and the baselines of one seed, into ``out``."""
    V, O, H = (torch.from_numpy(data.values), torch.from_numpy(data.observed),
               torch.from_numpy(data.h))
    test, train = split
    kw = {"tasks": layout.tasks(), "patch_t": args.patch_slots, "centred": args.centre}
    models = {"U-MASK": train_model(data, train, seed, args, policy="adaptive", label="U-MASK",
                                    **kw),
              CONTROL: train_model(data, train, seed, args, policy="fixed", label=CONTROL, **kw)}
    variants = {name: (train_model(data, train, seed, args, policy="adaptive", h=h, label=name,
                                   **kw), h)
                for name, h in rq4_embeddings(data, layout, seed).items() if name in args.rq4}
    out["train_seconds"].update({name: m.train_seconds for name, m in models.items()})
    out["train_seconds"].update({name: m.train_seconds for name, (m, _) in variants.items()})
    out["best_step"] = {name: m.best_step for name, m in models.items()}
    common = {"train_values": V[train], "train_scored": O[train], "groups": data.groups,
              "season": data.season, "n_samples": args.samples, "steps": args.eval_steps,
              "seed": seed,
              "uncertainty": (args.spread_steps, args.spread_samples)}
    for task in TASKS:
        t0 = time.perf_counter()
        res = compare(models, V[test], O[test], H[test], task,
                      budget_matched=("U-MASK", CONTROL), **common)
        out["sample_seconds"].setdefault("U-MASK, control and matched", {})[task] = \
            time.perf_counter() - t0
        for name, (model, h) in variants.items():
            res[name] = compare({name: model}, V[test], O[test], h[test], task, **common)[name]
        out["tasks"][task].update(res)


def anchor_rows(data: BenchData, layout: Horizon, seed: int, args, split, out: dict) -> None:
    """The PyPOTS anchors of one seed on ``--anchor-device``, from the evidence the baselines
    see (``baseline_evidence``), into ``out``; each anchor fitted, then run on every task."""
    V, O = torch.from_numpy(data.values), torch.from_numpy(data.observed)
    test, train = split
    val_keep, evidence = anchor_inputs(layout.tasks(), O, split, seed)
    gpu = args.anchor_device.startswith("cuda")
    batch = args.anchor_batch_size[0]
    out["anchors"] = {}
    for name in args.anchors:
        if gpu:
            torch.cuda.reset_peak_memory_stats(torch.device(args.anchor_device))
        model, out["train_seconds"][name] = fit_anchor(
            name, V[train], O[train], val_keep, seed, args.anchor_epochs, args.anchor_patience,
            args.val_fraction, device=args.anchor_device, verbose=args.anchor_verbose,
            batch_size=batch)
        print(f"  seed {seed}: fitted {name} in {out['train_seconds'][name]:.0f}s", flush=True)
        seconds = out["sample_seconds"].setdefault(name, {})
        for task in TASKS:
            target, seen = evidence[task]
            t0 = time.perf_counter()
            samples = anchor_samples(name, model, V[test], seen, args.anchor_samples)
            seconds[task] = time.perf_counter() - t0
            out["tasks"][task][name] = score_anchor(samples, V[test], target, data.groups)
            print(f"  seed {seed}: {name} completed {task} in {seconds[task]:.0f}s", flush=True)
        out["anchors"][name] = {"device": device_name(args.anchor_device),
                                "epochs": args.anchor_epochs, "patience": args.anchor_patience,
                                "batch_size": batch,
                                **({"samples": args.anchor_samples} if name == "CSDI" else {}),
                                **gpu_peak(args.anchor_device)}


def fingerprint(data: BenchData, layout: Horizon) -> dict:
    """What a joined run must share with this one: the data, its tensors and the layout."""
    digest = hashlib.sha256(data.values.tobytes())
    digest.update(data.observed.tobytes())
    return {"data": data.key, "layout": {**asdict(layout), "grid": list(layout.grid)},
            "shape": list(data.values.shape),
            "sha256": digest.hexdigest()}


def run_seed(data: BenchData, layout: Horizon, seed: int, args) -> dict:
    """Train every model of one seed, score every task; returns the JSON-able results.
    ``--anchors-only`` runs the anchors alone (to join another run through
    ``--anchor-results``)."""
    split = split_users(data.values.shape[0], seed, args.validation)
    out = {"train_seconds": {}, "sample_seconds": {}, "test": split[0].tolist(),
           "tasks": {task: {} for task in TASKS}, "fingerprint": fingerprint(data, layout)}
    if not args.anchors_only:
        umask_rows(data, layout, seed, args, split, out)
    anchor_rows(data, layout, seed, args, split, out)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def join_anchor_results(results: dict[int, dict], folder: Path) -> None:
    """Add the anchors of an ``--anchors-only`` run to ``results``: it must have scored the
    same tensors, layout and test users, and may not bring a method this run has."""
    for seed, res in results.items():
        path = folder / f"{seed}.json"
        if not path.exists():
            raise SystemExit(f"--anchor-results: {path} is missing (seed {seed})")
        other = json.loads(path.read_text())
        if other["test"] != res["test"] or other.get("fingerprint") != res.get("fingerprint"):
            raise SystemExit(f"--anchor-results: {path} scored other tensors, layout or test "
                             f"users than seed {seed} of this run; were the data options the "
                             "same?")
        mine = res.setdefault("anchors", {})
        for name, options in other["anchors"].items():
            if name in res["tasks"][TASKS[0]]:
                raise SystemExit(f"--anchor-results: {path} brings {name}, which this run has "
                                 f"too; leave it out of --anchors")
            for task in TASKS:
                res["tasks"][task][name] = other["tasks"][task][name]
            res["train_seconds"][name] = other["train_seconds"][name]
            res["sample_seconds"][name] = other["sample_seconds"][name]
            mine[name] = {**options, "joined": str(path)}


def run_all(data: BenchData, layout: Horizon, args, argv: list[str]) -> dict[int, dict]:
    """Every seed of ``args`` (a worker process each with --jobs > 1, the same options)."""
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    pending = [s for s in args.seeds if not (args.reuse and (work / f"{s}.json").exists())]
    for seed in pending:                     # never report a stale result of an earlier run
        (work / f"{seed}.json").unlink(missing_ok=True)
    procs: list[subprocess.Popen] = []

    def wait(proc: subprocess.Popen) -> None:
        if proc.wait():
            raise SystemExit(f"a seed worker failed (exit {proc.returncode})")

    for seed in pending:
        if args.quick or args.jobs == 1:
            (work / f"{seed}.json").write_text(json.dumps(run_seed(data, layout, seed, args)))
            continue
        procs.append(subprocess.Popen([sys.executable, __file__, *argv, "--workdir",
                                       args.workdir, "--worker-seed", str(seed)]))
        if len(procs) >= args.jobs:
            wait(procs.pop(0))
    for proc in procs:
        wait(proc)
    return {s: json.loads((work / f"{s}.json").read_text()) for s in args.seeds}


QUICK = {"seeds": [0], "steps": 10, "preset": "umask-tiny", "samples": 2, "eval_steps": 1,
         "val_fraction": 0.2, "val_every": 5, "weeks": 2, "max_users": 30, "anchor_epochs": 1,
         "anchor_samples": 2, "cold_days": 1.0, "spread_samples": 4, "spread_steps": 2,
         "long_weeks": 1}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--slot-hours", type=int, default=3)
    ap.add_argument("--spatial", choices=["latlon", "clusters"], default="clusters")
    ap.add_argument("--grid", type=int, nargs=2, default=[3, 3], metavar=("H", "W"))
    ap.add_argument("--long-weeks", type=int, default=2,
                    help="long term and cold start: the last weeks, hidden")
    ap.add_argument("--cold-days", type=float, default=3.0,
                    help="cold start: evidence worth this many days of the history window")
    ap.add_argument("--patch-slots", type=int, default=8, help="DiT patch length t0 in slots")
    ap.add_argument("--steps", type=int, default=400,
                    help="validation kept step 200 of 1000 (BENCHMARKS umask-months)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--preset", default="umask-small")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--eval-steps", type=int, default=1)
    ap.add_argument("--spread-steps", type=int, default=10,
                    help="DDIM steps of the samples scored by CRPS and coverage")
    ap.add_argument("--spread-samples", type=int, default=16)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--ema", type=float, default=0.99)
    ap.add_argument("--h-noise", type=float, default=0.0)
    ap.add_argument("--centre", nargs="*", choices=TASKS, default=list(TASKS))
    ap.add_argument("--centre-weighting", choices=["uniform", "relevance"], default="uniform")
    ap.add_argument("--rq4", nargs="*", choices=[NOISE, STANDIN], default=[NOISE, STANDIN])
    ap.add_argument("--anchors", nargs="*", choices=ANCHORS, default=["SAITS", "PatchTST"],
                    help="PyPOTS anchors (CSDI: about 0.1 s per user, sample and diffusion "
                         "step at T = 112 on this CPU)")
    ap.add_argument("--anchor-epochs", type=int, default=100)
    ap.add_argument("--anchor-patience", type=int, default=10)
    ap.add_argument("--anchor-samples", type=int, default=16,
                    help="CSDI samples per user (16: as many as U-MASK's CRPS samples)")
    ap.add_argument("--anchor-device", default="cpu",
                    help="torch device of the anchors (cuda: CSDI on a GPU machine)")
    ap.add_argument("--anchor-verbose", action="store_true", help="PyPOTS logs every epoch")
    ap.add_argument("--anchors-only", action="store_true",
                    help="fit and score only --anchors; its --workdir joins a full run "
                         "through --anchor-results")
    ap.add_argument("--anchor-results", default=None, metavar="DIR",
                    help="the --workdir of an --anchors-only run of the same seeds and data "
                         "options: its anchors join the report (refused if it scored other "
                         "tensors, layout or test users)")
    ap.add_argument("--anchor-cost", action="store_true",
                    help="time one epoch and one completion of each --anchors at each "
                         "--anchor-batch-size, a process each, and project one seed of the "
                         "budget; writes umask-anchor-cost (--reuse keeps timed ones)")
    ap.add_argument("--anchor-batch-size", type=int, nargs="+", default=[BATCH_SIZE],
                    help="batch size of the anchors; --anchor-cost times each one given")
    ap.add_argument("--cost-users", type=int, default=4,
                    help="--anchor-cost: test users of the timed completion")
    ap.add_argument("--cost-worker", nargs=2, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--save-tensors", default=None, metavar="NPZ",
                    help="write the tensors and h_u to NPZ and stop (--tensors reads them on "
                         "a machine without the dataset)")
    ap.add_argument("--tensors", default=None, metavar="NPZ",
                    help="the --save-tensors file instead of the dataset (with --anchors-only "
                         "or --anchor-cost)")
    ap.add_argument("--embedding", choices=["uscope", "standin"], default="uscope")
    ap.add_argument("--validation", action="store_true",
                    help="score on a fifth of each seed's training users; never writes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--reuse", action="store_true", help="keep finished seeds of --workdir")
    ap.add_argument("--worker-seed", type=int, default=None, help=argparse.SUPPRESS)
    add_dataset_args(ap, default="foursquare-nyc")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(ap, argv, quick=QUICK)
    if args.tensors and not (args.anchors_only or args.anchor_cost):
        ap.error("--tensors needs --anchors-only or --anchor-cost (a report needs the dataset "
                 "itself)")
    if len(args.anchor_batch_size) > 1 and not args.anchor_cost:
        ap.error("--anchor-batch-size takes one size, or several with --anchor-cost")
    split = "valid" if args.validation else "test"
    part = "-cost" if args.anchor_cost else "-anchors" if args.anchors_only else ""
    args.workdir = args.workdir or (tempfile.mkdtemp(prefix="bench_umask_months_") if args.quick
                                    else f"runs/umask_months/{args.spatial}-{split}{part}")
    torch.set_num_threads(args.threads)
    layout = layout_of(args)
    loaded = None
    if args.tensors:
        data = load_bench_data(args.tensors)
        if data.values.shape[2] != layout.n_slots:
            ap.error(f"{args.tensors} has {data.values.shape[2]} slots; the layout options "
                     f"give {layout.n_slots}: pass the options that saved it")
    else:
        loaded = load_for_benchmark(args, NEEDS["bench_umask_months"][0], "bench_umask_months",
                                    quick_users=30)
        data = months_data(loaded, layout, args.embedding)
    if args.save_tensors:
        save_bench_data(data, args.save_tensors)
        print(f"wrote {args.save_tensors}: tensors {data.values.shape}")
        return
    if args.cost_worker is not None:
        run_cost_worker(data, layout, args)
        return
    if args.anchor_cost:
        rows = cost_rows(data, args, argv, __file__, fingerprint(data, layout))
        body = quick_banner(args) + render_cost(data, rows, args)
        if loaded is None:
            print(body + "\n(not written to BENCHMARKS.md: tensors from --tensors)")
            return
        args.no_write |= args.validation
        report(args, loaded, "umask-anchor-cost", "Learned anchors: the cost of one seed "
               "(issue 19)", body)
        return
    if args.worker_seed is not None:
        out = run_seed(data, layout, args.worker_seed, args)
        (Path(args.workdir) / f"{args.worker_seed}.json").write_text(json.dumps(out))
        return
    results = run_all(data, layout, args, argv)
    if args.anchors_only:
        print(f"anchor results of seeds {list(results)} in {args.workdir}")
        return
    if args.anchor_results:
        join_anchor_results(results, Path(args.anchor_results))
    body = quick_banner(args) + render(data, layout, results, args)
    args.no_write |= args.validation
    report(args, loaded, "umask-months", "U-MASK + DiT over months (issue 19)", body)


if __name__ == "__main__":
    main()
