"""Which sampler gives the best point forecast? Re-scores the U-MASK models saved by a
``bench_umask.py --validation`` run on the same held-out training users (test users unseen).

    python benchmarks/bench_umask.py --validation --seeds 0 1 --workdir runs/umask_val ...
    python benchmarks/validate_umask_sampler.py --workdir runs/umask_val --seeds 0 1
    python benchmarks/validate_umask_sampler.py --quick --dataset simulated  # trains tiny models

Prints, per seed, task and sampler setting (DDIM steps x samples), the RMSE of the sample mean
against historical average on the same users. Nothing is written to BENCHMARKS.md. Use the
same data options (``--dataset`` ...) as the ``--validation`` run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import NEEDS, add_dataset_args, load_for_benchmark, parse_args
from bench_umask import QUICK, TASKS, run_seed, split_users
from umask_data import bench_data

from generative.completion import UMaskCompleter
from generative.evaluate import compare


def quick_models(data, seeds: list[int]) -> str:
    """Train bench_umask's quick models on the validation split (a smoke run)."""
    workdir = tempfile.mkdtemp(prefix="umask_sampler_")
    args = argparse.Namespace(**{**QUICK, "workdir": workdir, "validation": True, "ema": 0.0,
                                 "h_noise": 0.0, "val_every": 1, "centre": [],
                                 "sim_centre": [], "centre_weighting": "uniform"})
    for seed in seeds:
        run_seed(data, seed, args)
    return workdir


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=None, help="the --workdir of a --validation run "
                    "(--quick without it: tiny models trained here)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--settings", nargs="+", default=["1x1", "2x16", "5x32", "10x32"],
                    help="DDIM steps x samples per user")
    ap.add_argument("--embedding", choices=["uscope", "standin"], default="uscope")
    add_dataset_args(ap, default="netfp")
    args = parse_args(ap, argv, quick={"seeds": [0], "settings": ["1x1", "2x2"]})
    torch.set_num_threads(1)
    loaded = load_for_benchmark(args, NEEDS["validate_umask_sampler"][0],
                                "validate_umask_sampler")
    data = bench_data(loaded, args.embedding)
    if args.workdir is None:
        if not args.quick:
            ap.error("--workdir is required (the folder of a bench_umask.py --validation run)")
        args.workdir = quick_models(data, args.seeds)
    V, O, H = (torch.from_numpy(x) for x in (data.values, data.observed, data.h))
    print(f"{data.name}: validation users of each seed", flush=True)
    for seed in args.seeds:
        test, train = split_users(V.shape[0], seed, validation=True)
        model = UMaskCompleter.load(Path(args.workdir) / data.key / f"seed{seed}")
        for setting in args.settings:
            steps, samples = (int(x) for x in setting.split("x"))
            for task in TASKS:
                r = compare({"U-MASK": model}, V[test], O[test], H[test], task,
                            train_values=V[train], train_scored=O[train], groups=data.groups,
                            season=data.season, n_samples=samples, steps=steps, seed=seed)
                group = next(iter(data.groups))
                ours = r["U-MASK"][group]["rmse"]
                ha = r["historical average"][group]["rmse"]
                print(f"seed {seed} DDIM-{steps} x{samples} {task} ({group}): U-MASK "
                      f"{ours:.4f} HA {ha:.4f} ratio {ours / ha:.4f}", flush=True)


if __name__ == "__main__":
    main()
