"""Novelty recommendation: quality of every strategy side by side, and latency.

- real netfp data, novelty protocol (the day's later hours are hidden), apps and intents;
- the llm strategy (bundled SmolLM2-135M, no fine-tuning) on a subset of users, next to the
  others on the same subset;
- a SIMULATED population, cold-start protocol (apps recommended from location history only);
- latency of one call (known user, unseen history) and batch throughput.

Run: python benchmarks/bench_recommend.py [--seeds 3] [--llm-users 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section

from uscope.data import cutoff_time, novelty_split, read_netfp, simulate
from uscope.profile import profile_users
from uscope.recommend import Recommender
from uscope.recommend.evaluate import EvalConfig, evaluate_recommendations, location_only, summarise

NETFP = Path(__file__).resolve().parents[2] / "shared" / "data" / "netfp" / "data0117_dev.csv"
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


def latency(recommender: Recommender, users: list[str], events: pd.DataFrame, n: int) -> list[dict]:
    known, unseen = [], []
    for user in users[:n]:
        start = time.perf_counter()
        recommender.recommend(user, kind="app", k=5)
        known.append(time.perf_counter() - start)
    for user in users[:n]:
        history = events[events["user_id"] == user].assign(user_id="new user")
        start = time.perf_counter()
        recommender.recommend(history, kind="app", k=5)
        unseen.append(time.perf_counter() - start)
    start = time.perf_counter()
    for user in users:
        recommender.recommend(user, kind="app", k=5)
    batch = len(users) / (time.perf_counter() - start)

    def pct(values, q):
        return f"{np.percentile(values, q) * 1000:.1f}"

    return [{"call": "known user (neighbours)", "p50 ms": pct(known, 50), "p95 ms": pct(known, 95)},
            {"call": "unseen history (profiled on the fly: heuristic + MiniLM)",
             "p50 ms": pct(unseen, 50), "p95 ms": pct(unseen, 95)},
            {"call": f"batch of {len(users)} known users", "users/s": f"{batch:.1f}"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--llm-users", type=int, default=30)
    parser.add_argument("--sim-users", type=int, default=140)
    args = parser.parse_args()
    seeds = tuple(range(args.seeds))
    started = time.perf_counter()
    sections = []

    events, _ = read_netfp(NETFP, language="en")
    cut = cutoff_time(events, 0.6)
    history, _ = novelty_split(events, "app", cut)
    profiles = profile_users(history, backend="heuristic")
    for kind in ("app", "intent"):
        results = evaluate_recommendations(events, EvalConfig(kind=kind, seeds=seeds, cutoff=0.6),
                                           progress=print, profiles=profiles)
        sections.append(table(results, f"netfp (real), novelty protocol, kind={kind}, cut-off "
                                       f"{cut:%H:%M}, heuristic profiles + MiniLM"))
    if args.llm_users:
        config = EvalConfig(kind="intent", seeds=(0,), cutoff=0.6, max_users=args.llm_users,
                            strategies=("popular", "neighbours", "llm"))
        results = evaluate_recommendations(events, config, progress=print, profiles=profiles)
        sections.append(table(results, f"netfp (real), novelty, kind=intent, first "
                                       f"{args.llm_users} users by id (no bootstrap): llm = "
                                       f"bundled SmolLM2-135M-Instruct, not fine-tuned"))

    population = simulate(n_users=args.sim_users, days=7, seed=0)
    sim = population.events
    cold_profiles = profile_users(location_only(sim), backend="heuristic")
    results = evaluate_recommendations(sim, EvalConfig(protocol="coldstart", seeds=seeds),
                                       progress=print, profiles=cold_profiles)
    sections.append(table(results, f"SIMULATED population ({args.sim_users} users x 7 days), "
                                   "cold-start protocol: apps from location history only"))

    recommender = Recommender(profiles, history)
    users = sorted(profiles.user_ids)[:200]
    rows = latency(recommender, users, history, n=40)
    sections.append("**Latency on real netfp histories (this CPU)**\n\n"
                    + markdown_table(rows, ["call", "p50 ms", "p95 ms", "users/s"]))
    minutes = (time.perf_counter() - started) / 60
    body = "\n\n".join(sections) + (
        f"\n\nMetrics: mean over evaluated users; ± is the spread over {args.seeds} seeds, each a "
        "bootstrap resample of the users (coldstart: each seed also draws the held-out 30%). "
        f"Whole run: {minutes:.1f} min.\n")
    print(body)
    write_section("recommend", "Novelty recommendation", body)


if __name__ == "__main__":
    main()
