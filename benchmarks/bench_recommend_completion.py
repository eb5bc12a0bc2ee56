"""The completion strategy next to popular and neighbours, on intents of a registered dataset
(default: the real netfp data).

Protocol: 80% of users (by seed) train a U-MASK + DiT on their whole span (hourly, at most two
days: a stand-in for "yesterday's data" of other users); the other 20% are evaluated with the
novelty protocol (history before the cut-off, targets = intents first used after it). popular
and neighbours use every user's history before the cut-off; completion completes the held-out
user's tensor from its own history and h_u. The strategy's tensors hold app categories only,
so the benchmark reads the app uses of the data (places set aside): it needs apps and times.

Run: python benchmarks/bench_recommend_completion.py [--dataset netfp] [--steps 600] [--seeds 2]
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
from _data import NEEDS, add_dataset_args, load_for_benchmark, parse_args, quick_banner, report
from bench_recommend import summary_table

from generative.completion import UMaskCompleter
from generative.conditioning import align_embeddings
from generative.config import DIT_PRESETS
from generative.train import TrainConfig, fit
from uscope.data import TensorConfig, build_tensors, cutoff_time, novelty_split, validate_events
from uscope.profile import profile_users
from uscope.recommend.evaluate import EvalConfig, evaluate_recommendations

QUICK = {"steps": 10, "seeds": 1, "preset": "umask-tiny"}


def app_view(events: pd.DataFrame) -> pd.DataFrame:
    """The app uses of ``events`` with their places set aside (the strategy's tensor layout)."""
    apps = events[events["app"].notna()].copy()
    apps[["location_id", "location_category"]] = None
    apps[["latitude", "longitude"]] = np.nan
    return validate_events(apps, source="app view")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--preset", default="umask-small")
    add_dataset_args(parser, default="netfp")
    args = parse_args(parser, argv, quick=QUICK)
    torch.set_num_threads(2)
    started = time.perf_counter()
    data = load_for_benchmark(args, NEEDS["bench_recommend_completion"][0],
                              "bench_recommend_completion",
                              options={"netfp": {"language": "en"}})
    events = app_view(data.events)
    history, _ = novelty_split(events, "intent", cutoff_time(events, 0.6))
    profiles = profile_users(history, backend="heuristic")
    days = min(2, (events["timestamp"].max().normalize()
                   - events["timestamp"].min().normalize()).days + 1)
    batch = build_tensors(events, TensorConfig(slot_minutes=60, n_slots=24 * days))
    _, c, t, height, width = batch.shape
    row_of = {u: i for i, u in enumerate(profiles.ok.user_ids)}
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
        h = align_embeddings(profiles, [users[i] for i in train])
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
    label = (f"{data.label} (app uses), novelty protocol, kind=intent, held-out 20% of users "
             f"per seed; completion = {args.preset} trained {args.steps} steps on the other "
             f"80%'s first {days * 24} hours, cold-start task, 4 DDIM-10 samples")
    body = quick_banner(args) + f"**{label}**\n\n" + summary_table(results)
    body += (f"\n\nSeeds: {args.seeds} (each draws the held-out devices and retrains the model; "
             f"users are not bootstrapped here). Whole run: {minutes:.1f} min.\n")
    report(args, data, "recommend-completion", "Novelty recommendation: the completion strategy",
           body)


if __name__ == "__main__":
    main()
