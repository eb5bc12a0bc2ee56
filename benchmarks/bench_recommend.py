"""Novelty recommendation: quality of every strategy side by side, and latency.

- a registered dataset (default: the real netfp data), novelty protocol (the later part of
  the time span is hidden), for each item kind the data has (``--kinds``; netfp: apps and
  intents);
- the llm strategy (bundled SmolLM2-135M, no fine-tuning) on a subset of users, next to the
  others on the same subset;
- the cold-start protocol (apps recommended from location history only) on
  ``--coldstart-dataset`` (default: a SIMULATED population; it needs apps and places);
- latency of one call (known user, unseen history) and batch throughput.

Run: python benchmarks/bench_recommend.py [--dataset netfp] [--seeds 3] [--llm-users 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import (
    NEEDS,
    add_dataset_args,
    kind_needs,
    load_for_benchmark,
    parse_args,
    quick_banner,
    registered,
    report,
    require,
)
from _report import markdown_table

from uscope.data import DataError, cutoff_time, novelty_split
from uscope.profile import profile_users
from uscope.recommend import Recommender
from uscope.recommend.evaluate import EvalConfig, evaluate_recommendations, location_only, summarise

COLDSTART_NEEDS = ("apps", "places")
KINDS = ("app", "place", "location", "intent")
QUICK = {"seeds": 1, "llm_users": 0, "sim_users": 30}  # the llm path: bench_llm_scoring
SHOWN = ["users", "Recall@1", "Recall@3", "Recall@5", "NDCG@3", "NDCG@5", "MRR@5", "accuracy"]


def table(results: pd.DataFrame, label: str) -> str:
    summary = summarise(results)
    summary.insert(0, "users", results.groupby("strategy", sort=False)["users"].first())
    rows = [{"strategy": name, **row} for name, row in summary[SHOWN].iterrows()]
    paired = ""
    if {"popular", "neighbours"} <= set(results["strategy"]):
        by = results.pivot(index="seed", columns="strategy")
        diffs = {m: by[m]["neighbours"] - by[m]["popular"] for m in ("Recall@5", "NDCG@5")}
        wins = {m: int((d > 0).sum()) for m, d in diffs.items()}
        paired = ("\nneighbours - popular, paired per seed: " + "; ".join(
            f"{m} {d.mean():+.4f} (better in {wins[m]}/{len(d)} seeds)"
            for m, d in diffs.items()) + "\n")
    return f"**{label}**\n\n" + markdown_table(rows, ["strategy", *SHOWN]) + "\n" + paired


def latency(recommender: Recommender, users: list[str], events: pd.DataFrame, n: int,
            kind: str) -> list[dict]:
    known, unseen = [], []
    for user in users[:n]:
        start = time.perf_counter()
        recommender.recommend(user, kind=kind, k=5)
        known.append(time.perf_counter() - start)
    for user in users[:n]:
        history = events[events["user_id"] == user].assign(user_id="new user")
        start = time.perf_counter()
        recommender.recommend(history, kind=kind, k=5)
        unseen.append(time.perf_counter() - start)
    start = time.perf_counter()
    for user in users:
        recommender.recommend(user, kind=kind, k=5)
    batch = len(users) / (time.perf_counter() - start)

    def pct(values, q):
        return f"{np.percentile(values, q) * 1000:.1f}"

    return [{"call": "known user (neighbours)", "p50 ms": pct(known, 50), "p95 ms": pct(known, 95)},
            {"call": "unseen history (profiled on the fly: heuristic + MiniLM)",
             "p50 ms": pct(unseen, 50), "p95 ms": pct(unseen, 95)},
            {"call": f"batch of {len(users)} known users", "users/s": f"{batch:.1f}"}]


def coldstart(args, seeds) -> str:
    """The cold-start table on ``--coldstart-dataset`` (apps from location history only)."""
    cold_args = argparse.Namespace(**{**vars(args), "dataset": args.coldstart_dataset,
                                      "events": None})
    data = load_for_benchmark(cold_args, COLDSTART_NEEDS, "bench_recommend (cold start)",
                              options={"simulated": {"n_users": args.sim_users, "days": 7}})
    events = data.events
    profiles = profile_users(location_only(events), backend="heuristic",
                             users=sorted(events["user_id"].unique()))
    results = evaluate_recommendations(events, EvalConfig(protocol="coldstart", seeds=seeds),
                                       progress=print, profiles=profiles)
    return table(results, f"{data.label}, {events['user_id'].nunique()} users, cold-start "
                          "protocol: apps from location history only")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=None,
                        help="item kinds (default: those of the dataset among app, intent, "
                             "place, location)")
    parser.add_argument("--llm-users", type=int, default=30)
    parser.add_argument("--coldstart-dataset", choices=[*registered(), "none"],
                        default="simulated")
    parser.add_argument("--sim-users", type=int, default=140,
                        help="users of the simulated population (when a dataset is simulated)")
    add_dataset_args(parser, default="netfp")
    args = parse_args(parser, argv, quick=QUICK)
    seeds = tuple(range(args.seeds))
    started = time.perf_counter()
    sections = []

    data = load_for_benchmark(args, NEEDS["bench_recommend"][0], "bench_recommend", options={
        "netfp": {"language": "en"}, "simulated": {"n_users": args.sim_users, "days": 7}})
    kinds = args.kinds or [k for k in ("app", "intent", "place", "location")
                           if k in data.spec.kinds]
    require(data, kind_needs(kinds, data.spec.fields), "bench_recommend")
    events = data.events
    cut = cutoff_time(events, 0.6)
    history, _ = novelty_split(events, kinds[0], cut)
    profiles = profile_users(history, backend="heuristic")
    label = f"{data.label}, {events['user_id'].nunique()} users"
    for kind in kinds:
        title = (f"{label}, novelty protocol, kind={kind}, cut-off {cut:%Y-%m-%d %H:%M}, "
                 "heuristic profiles + MiniLM")
        try:
            results = evaluate_recommendations(events, EvalConfig(
                kind=kind, seeds=seeds, cutoff=0.6), progress=print, profiles=profiles)
        except DataError as exc:  # e.g. every user had used every item before the cut-off
            sections.append(f"**{title}**: not evaluated ({exc.reason})")
            continue
        sections.append(table(results, title))
    if args.llm_users:
        config = EvalConfig(kind="intent", seeds=(0,), cutoff=0.6, max_users=args.llm_users,
                            strategies=("popular", "neighbours", "llm"))
        results = evaluate_recommendations(events, config, progress=print, profiles=profiles)
        sections.append(table(results, f"{data.label}, novelty, kind=intent, first "
                                       f"{args.llm_users} users by id (no bootstrap): llm = "
                                       f"bundled SmolLM2-135M-Instruct, not fine-tuned"))
    if args.coldstart_dataset != "none":
        sections.append(coldstart(args, seeds))

    recommender = Recommender(profiles, history)
    users = sorted(profiles.ok.user_ids)[:200]
    rows = latency(recommender, users, history, n=40, kind=kinds[0])
    sections.append(f"**Latency on {data.label} histories, kind={kinds[0]} (this CPU)**\n\n"
                    + markdown_table(rows, ["call", "p50 ms", "p95 ms", "users/s"]))
    minutes = (time.perf_counter() - started) / 60
    body = quick_banner(args) + "\n\n".join(sections) + (
        f"\n\nMetrics: mean over evaluated users; ± is the spread over {args.seeds} seeds, each a "
        "bootstrap resample of the users (coldstart: each seed also draws the held-out 30%). "
        f"Whole run: {minutes:.1f} min.\n")
    report(args, data, "recommend", "Novelty recommendation", body)


if __name__ == "__main__":
    main()
