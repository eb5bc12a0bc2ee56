"""Which sampler gives the best point forecast? Re-scores the U-MASK models saved by a
``bench_umask.py --validation`` run on the same held-out training users (test users unseen).

    python benchmarks/bench_umask.py --validation --seeds 0 1 --workdir runs/umask_val ...
    python benchmarks/validate_umask_sampler.py --workdir runs/umask_val --seeds 0 1

Prints, per seed, task and sampler setting (DDIM steps x samples), the RMSE of the sample mean
against historical average on the same users. Nothing is written to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_umask import TASKS, split_users
from umask_data import netfp

from generative.completion import UMaskCompleter
from generative.evaluate import compare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True, help="the --workdir of a --validation run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--settings", nargs="+", default=["1x1", "2x16", "5x32", "10x32"],
                    help="DDIM steps x samples per user")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = netfp("uscope")
    V, O, H = (torch.from_numpy(x) for x in (data.values, data.observed, data.h))
    for seed in args.seeds:
        test, train = split_users(V.shape[0], seed, validation=True)
        model = UMaskCompleter.load(Path(args.workdir) / "netfp" / f"seed{seed}")
        for setting in args.settings:
            steps, samples = (int(x) for x in setting.split("x"))
            for task in TASKS:
                r = compare({"U-MASK": model}, V[test], O[test], H[test], task,
                            train_values=V[train], train_scored=O[train], groups=data.groups,
                            season=data.season, n_samples=samples, steps=steps, seed=seed)
                ours, ha = r["U-MASK"]["app"]["rmse"], r["historical average"]["app"]["rmse"]
                print(f"seed {seed} DDIM-{steps} x{samples} {task}: U-MASK {ours:.4f} "
                      f"HA {ha:.4f} ratio {ours / ha:.4f}", flush=True)


if __name__ == "__main__":
    main()
