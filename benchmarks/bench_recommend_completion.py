"""The completion strategy next to popular and neighbours, on real netfp intents.

Protocol: 80% of devices (by seed) train a U-MASK + DiT on their whole day (a stand-in for
"yesterday's data" of other users); the other 20% are evaluated with the novelty protocol
(history before the cut-off, targets = intents first used after it). popular and neighbours
use every device's history before the cut-off; completion completes the held-out device's
tensor from its own history and h_u.

Run: python benchmarks/bench_recommend_completion.py [--steps 600] [--seeds 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from bench_recommend import table

from generative.completion import UMaskCompleter
from generative.config import DIT_PRESETS
from generative.train import TrainConfig, fit
from uscope.data import TensorConfig, build_tensors, cutoff_time, novelty_split, read_netfp
from uscope.profile import profile_users
from uscope.recommend.evaluate import EvalConfig, evaluate_recommendations

NETFP = Path(__file__).resolve().parents[2] / "shared" / "data" / "netfp" / "data0117_dev.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--preset", default="umask-small")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    events, _ = read_netfp(NETFP, language="en")
    history, _ = novelty_split(events, "intent", cutoff_time(events, 0.6))
    profiles = profile_users(history, backend="heuristic")
    batch = build_tensors(events, TensorConfig(slot_minutes=60, n_slots=24))
    _, c, t, height, width = batch.shape
    h_all = profiles.embeddings()
    row_of = {u: i for i, u in enumerate(profiles.user_ids)}
    results = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        users = np.array(batch.user_ids)
        held = set(rng.choice(users, size=len(users) // 5, replace=False).tolist())
        train = [i for i, u in enumerate(users) if u not in held and u in row_of]
        cfg = DIT_PRESETS[args.preset](channels=c, n_slots=t, height=height, width=width)
        cfg.channel_names, cfg.channel_groups = batch.channel_names, batch.channel_groups
        torch.manual_seed(seed)
        model = UMaskCompleter(cfg)
        h = h_all[[row_of[users[i]] for i in train]]
        fit(model, batch.values[train], batch.observed_mask[train], h,
            TrainConfig(steps=args.steps, batch_size=32, seed=seed, log_every=200), callback=print)
        config = EvalConfig(kind="intent", cutoff=0.6, seeds=(seed,), users=sorted(held),
                            strategies=("popular", "neighbours", "completion"),
                            strategy_options={"completion": {"model": model, "n_samples": 4,
                                                             "steps": 10}})
        results.append(evaluate_recommendations(events, config, progress=print,
                                                profiles=profiles))
    results = pd.concat(results, ignore_index=True)
    minutes = (time.perf_counter() - started) / 60
    body = table(results, f"netfp (real), novelty protocol, kind=intent, held-out 20% of devices "
                          f"per seed; completion = {args.preset} trained {args.steps} steps on "
                          "the other 80%'s whole day, cold-start task, 4 DDIM-10 samples")
    body += (f"\n\nSeeds: {args.seeds} (each draws the held-out devices and retrains the model; "
             f"users are not bootstrapped here). Whole run: {minutes:.1f} min.\n")
    print(body)
    write_section("recommend-completion", "Novelty recommendation: the completion strategy", body)


if __name__ == "__main__":
    main()
