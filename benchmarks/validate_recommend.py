"""Temporal validation of the recommendation strategies (default: on netfp), before the
benchmark's cut-off.

The benchmark (``bench_recommend.py``) hides what users first use after 0.6 of the day's time
span. Choices about the ``neighbours`` strategy are made here, on events before that cut-off
only: the inner split puts a cut-off at ``--inner`` (0.4) of the whole time span, profiles the
histories before it (heuristic backend + MiniLM, as the bench does) and takes as targets the
items each user first used between the inner and the outer cut-off. Nothing at or after the
outer cut-off is read past the split.

Every strategy runs through ``Recommender.recommend`` (the real code path). Each variant is
compared with ``popular`` on the same users, paired: the spread is the standard deviation of
the mean difference over ``--boot`` bootstrap resamples of the users.

Run: python benchmarks/validate_recommend.py [--dataset netfp] [--inner 0.4 0.5] [--out report.md]
(``--quick``: few users, a few variants, 50 resamples; nothing is written to BENCHMARKS.md.)
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
from _data import add_dataset_args, kind_needs, load_for_benchmark, parse_args, require
from _report import markdown_table

from uscope.data import cutoff_time, novelty_split
from uscope.profile import profile_users
from uscope.recommend import NeighboursStrategy, Recommender
from uscope.recommend.metrics import ranking_metrics

METRICS = ("Recall@5", "NDCG@5")
QUICK = {"boot": 50, "variants": 3}


def variants() -> dict[str, NeighboursStrategy | str]:
    """popular, the current default and the candidate signals of ``NeighboursStrategy``."""
    out: dict[str, NeighboursStrategy | str] = {"popular": "popular",
                                                "neighbours (default)": NeighboursStrategy(),
                                                "profile only (default before 2026-11-24)":
                                                NeighboursStrategy(50, profile_weight=1.0,
                                                                   combine="shrink", beta=1.0)}
    for n in (50, 150):
        out[f"profile n={n} kappa=20"] = NeighboursStrategy(n, kappa=20.0, profile_weight=1.0,
                                                              combine="shrink", beta=1.0)
        for w in (0.5, 0.0):
            out[f"usage-mix w={w} n={n}"] = NeighboursStrategy(n, profile_weight=w,
                                                                 combine="shrink", beta=1.0)
    for w in (1.0, 0.5):
        for n in (150, 400):
            for kappa in (5.0, 20.0):
                for beta in (0.25, 0.5):
                    out[f"lift w={w} n={n} kappa={kappa:g} beta={beta}"] = NeighboursStrategy(
                        n, kappa=kappa, profile_weight=w, combine="lift", beta=beta)
    return out


def per_user(recommender: Recommender, targets: dict[str, set[str]], kind: str) -> pd.DataFrame:
    rows = {}
    for user in sorted(targets):
        ranked = [r.item for r in recommender.recommend(user, kind=kind, k=5)]
        rows[user] = ranking_metrics(ranked, targets[user], (5,))
    return pd.DataFrame.from_dict(rows, orient="index")[list(METRICS)]


def compare(scores: dict[str, pd.DataFrame], n_boot: int, seed: int = 0) -> list[dict]:
    """Mean of each metric, and the paired difference to popular with its bootstrap spread."""
    base = scores["popular"]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(base), size=(n_boot, len(base)))  # the same resamples for all
    rows = []
    for name, frame in scores.items():
        row: dict = {"strategy": name}
        beats = name != "popular"
        for metric in METRICS:
            diff = (frame[metric] - base[metric]).to_numpy()
            spread = float(diff[draws].mean(axis=1).std())
            row[metric] = f"{frame[metric].mean():.4f}"
            if name != "popular":
                row[f"{metric} - popular"] = f"{diff.mean():+.4f} ± {spread:.4f}"
                beats &= bool(diff.mean() > spread)
        row["beats popular"] = "yes" if beats else ""
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outer", type=float, default=0.6, help="the benchmark's cut-off")
    parser.add_argument("--inner", type=float, nargs="+", default=[0.4])
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    parser.add_argument("--kinds", nargs="+", default=["app", "intent"],
                        choices=["app", "intent", "place", "location"])
    parser.add_argument("--variants", type=int, default=None, help="only the first N variants")
    add_dataset_args(parser, default="netfp")
    args = parse_args(parser, argv, quick=QUICK)
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = load_for_benchmark(args, ("times",), "validate_recommend",
                              options={"netfp": {"language": "en"}})
    require(data, kind_needs(args.kinds, data.spec.fields), "validate_recommend")
    events = data.events
    outer = cutoff_time(events, args.outer)
    before = events[events["timestamp"] < outer].reset_index(drop=True)  # all this script reads
    sections = []
    for fraction in args.inner:
        if not 0 < fraction < args.outer:
            raise SystemExit(f"--inner {fraction} must lie between 0 and --outer {args.outer}")
        inner = cutoff_time(events, fraction)
        history, _ = novelty_split(before, args.kinds[0], inner)
        print(f"inner cut-off {inner:%H:%M}: profiling {history['user_id'].nunique()} histories",
              flush=True)
        profiles = profile_users(history, backend="heuristic")
        for kind in args.kinds:
            _, targets = novelty_split(before, kind, inner)
            targets = {u: t for u, t in targets.items() if u in set(profiles.ok.user_ids)}
            scores = {}
            for name, strategy in list(variants().items())[:args.variants]:
                scores[name] = per_user(Recommender(profiles, history, strategy), targets, kind)
                print(f"  {kind} {name}: " + ", ".join(
                    f"{m} {scores[name][m].mean():.4f}" for m in METRICS), flush=True)
            columns = ["strategy", *[c for m in METRICS for c in (m, f"{m} - popular")],
                       "beats popular"]
            sections.append(f"**{data.label}, kind={kind}, inner cut-off {inner:%H:%M} "
                            f"({fraction} of the span), targets first used before "
                            f"{outer:%H:%M}; {len(targets)} users**\n\n"
                            + markdown_table(compare(scores, args.boot), columns))
    minutes = (time.perf_counter() - started) / 60
    body = "\n\n".join(sections) + (
        f"\n\n± is the standard deviation of the paired mean difference over {args.boot} "
        "bootstrap resamples of the users; 'beats popular' = both differences exceed their "
        f"spread. Whole run: {minutes:.1f} min.\n")
    print(body)
    if args.out:
        args.out.write_text(body)


if __name__ == "__main__":
    main()
