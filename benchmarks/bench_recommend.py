"""Novelty recommendation: every strategy and the collaborative-filtering anchors side by side
on the test users of a dataset, with paired differences, and the speed of the API.

The protocols are those the dataset supports (``_recommend_cases.py``: leave-20%-out and cold
users with 1/3/5 known items on untimed Frappe, each user's later weeks on Foursquare NYC and
StudentLife, one global cut-off on netfp's day, apps from location history where the data has
both). Only the *test* half of the users is evaluated (``split_users`` seed 0); every default
was chosen on the validation half (``validate_recommend.py``, BENCHMARKS
``recommend-validation``). Each seed redraws what is hidden (or, for the time protocols,
resamples the users).

The anchors: ``itemknn``, ``userknn`` (cosine), ``ease`` (EASE^R, Steck 2019) and ``als`` /
``bpr`` from the maintained library implicit. The default strategy is ``hybrid`` (eq. H1-H3).
With ``--speed`` (default on the default dataset): fit time, per-call latency and
``recommend_batch`` throughput on this dataset and on a SIMULATED 1,000 users x 4,000 items
catalogue.

Run: python benchmarks/bench_recommend.py [--dataset frappe] [--seeds 3] [--kinds app ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import NEEDS, add_dataset_args, load_for_benchmark, parse_args, quick_banner, report
from _recommend_cases import dataset_kinds, recommend_cases
from _report import markdown_table

from uscope.data import DataError, validate_events
from uscope.data.schema import has_times
from uscope.recommend import Recommender
from uscope.recommend.evaluate import EvalConfig, Evaluation, run_evaluation, summarise
from uscope.recommend.hybrid import HybridStrategy
from uscope.recommend.recommender import DEFAULT

STRATEGIES = ("popular", "neighbours", "itemknn", "userknn", "ease", "als", "bpr", "hybrid")
QUICK = {"seeds": 1, "max_eval_users": 60}
SHOWN = ["users", "Recall@5", "Recall@10", "Recall@20", "NDCG@5", "NDCG@10", "NDCG@20",
         "MRR@10", "coverage@10", "popularity@10"]
LIBRARY = ("als", "bpr")  # the maintained-library models (implicit)


def table(evaluation: Evaluation) -> str:
    return summary_table(evaluation.results)


def summary_table(results: pd.DataFrame) -> str:
    """One row per strategy: each metric's mean ± spread over the seeds."""
    summary = summarise(results)
    summary.insert(0, "users", results.groupby("strategy", sort=False)["users"].first())
    rows = [{"strategy": name, **row} for name, row in summary[SHOWN].iterrows()]
    return markdown_table(rows, ["strategy", *SHOWN])


def paired(evaluation: Evaluation, default: str) -> str:
    """The default minus popular, EASE^R, user-kNN and the best library model, per user and
    pooled over seeds, with 95% bootstrap intervals."""
    means = evaluation.results.groupby("strategy")[["Recall@10", "NDCG@10"]].mean()
    recall = means["Recall@10"]
    library = max((m for m in LIBRARY if m in recall), key=lambda m: recall[m], default=None)
    references = [r for r in ("popular", "ease", "userknn", library) if r and r in recall
                  and r != default]
    lines = []
    for metric in ("Recall@10", "NDCG@10"):
        for reference in references:
            test = evaluation.paired(reference, metric)
            row = test[test["strategy"] == default].iloc[0]
            ratio = means[metric][default] / max(means[metric][reference], 1e-12)
            lines.append(f"{metric}: {default} - {reference} {row['mean']:+.4f} "
                         f"[{row['low']:+.4f}, {row['high']:+.4f}] ({ratio:.2f}x)")
    return "Paired, per user, pooled over seeds (95% bootstrap interval; ratio of means): " \
        + "; ".join(lines)


def pooled_cold(per_user: pd.DataFrame) -> str:
    """The cold cases pooled ("users with at most 5 known items"): the default against EASE^R
    and popular on Recall@10 and NDCG@10, per user over every N and seed."""
    pooled = Evaluation(pd.DataFrame(), per_user)
    lines = []
    for metric in ("Recall@10", "NDCG@10"):
        means = per_user.groupby("strategy")[metric].mean()
        for reference in ("ease", "popular", "als"):
            if reference in means and DEFAULT in means:
                test = pooled.paired(reference, metric)
                row = test[test["strategy"] == DEFAULT].iloc[0]
                lines.append(f"{metric}: {DEFAULT} {means[DEFAULT]:.4f} vs {reference} "
                             f"{means[reference]:.4f} ({means[DEFAULT] / means[reference]:.2f}x"
                             f", paired {row['mean']:+.4f} [{row['low']:+.4f}, "
                             f"{row['high']:+.4f}])")
    users = per_user.groupby("strategy").size().iloc[0]
    return ("**Cold users pooled (1, 3 and 5 known items, every seed: "
            f"{users} user cases)**: " + "; ".join(lines))


def context_section(events: pd.DataFrame, case: tuple[str, str, dict], args) -> str | None:
    """The hybrid with and without its context lift, queries carrying the hidden rows'
    context (hour / weekday, Frappe's daytime / weekday / homework, the place category)."""
    protocol, kind, options = case
    default = HybridStrategy().gamma
    strategies = {"popular (in context)": "popular",
                  f"hybrid (default: validated gamma = {default:g})": "hybrid"}
    for gamma in (g for g in (0.0, 0.5, 2.0) if g != default):
        strategies[f"hybrid, gamma = {gamma:g}" + (" (no context lift)" if gamma == 0 else "")] \
            = HybridStrategy(gamma=gamma)
    config = EvalConfig(kind=kind, protocol=protocol, strategies=strategies,
                        seeds=tuple(range(args.seeds)), users="test", use_context=True,
                        max_users=args.max_eval_users, **options)
    evaluation = run_evaluation(events, config, progress=print)
    return table(evaluation)


def speed_rows(recommender: Recommender, label: str, kind: str, events: pd.DataFrame,
               fit_seconds: float) -> list[dict]:
    users = recommender.index.user_ids
    known = []
    for user in users[:50]:
        started = time.perf_counter()
        recommender.recommend(user, kind=kind, k=10)
        known.append(time.perf_counter() - started)
    unseen = []
    for user in users[:10]:
        history = events[events["user_id"] == user].assign(user_id="new user")
        started = time.perf_counter()
        recommender.recommend(history, kind=kind, k=10)
        unseen.append(time.perf_counter() - started)
    batch = users[:1000]
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        recommender.recommend_batch(batch, kind=kind, k=10)
        rates.append(len(batch) / (time.perf_counter() - started))
    n_items = len(recommender.index.matrix(kind).items)
    return [{"data": label, "users x items": f"{len(users)} x {n_items}",
             "fit s": f"{fit_seconds:.1f}",
             "known user p50 ms": f"{np.median(known) * 1000:.1f}",
             "unseen history p50 ms": f"{np.median(unseen) * 1000:.0f}",
             "batch users": len(batch), "batch users/s (median of 3)": f"{np.median(rates):.0f}"}]


def simulated_catalogue(n_users: int = 1000, n_items: int = 4000, seed: int = 0) -> pd.DataFrame:
    """SIMULATED usage over a 4,000-item catalogue: every item used once, then Zipf item
    popularity, 5-60 items a user, ten categories, timestamps over a week (for the speed table
    only, never for quality)."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    rows = []
    start = pd.Timestamp("2024-01-01")
    for item in range(n_items):  # every item used at least once: the catalogue is n_items
        rows.append((f"u{int(rng.integers(0, n_users))}", start, f"app{item}",
                     f"category{item % 10}"))
    for user in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(5, 61)), replace=False, p=popularity)
        for item in items:
            rows.append((f"u{user}", start + pd.Timedelta(minutes=int(rng.integers(0, 10080))),
                         f"app{item}", f"category{item % 10}"))
    return validate_events(pd.DataFrame(rows, columns=["user_id", "timestamp", "app",
                                                       "app_category"]))


def speed(data, kind: str) -> str:
    rows = []
    for label, events in ((data.label, data.events),
                          ("SIMULATED 1,000 x 4,000 catalogue", simulated_catalogue())):
        started = time.perf_counter()
        recommender = Recommender.fit(events, None, DEFAULT, kinds=(kind,))
        rows += speed_rows(recommender, label, kind, events, time.perf_counter() - started)
    columns = list(rows[0])
    return ("**Speed of the default strategy (this CPU; fit = `Recommender.fit`: heuristic "
            "profiles + MiniLM for every user, then the models; known user = one `recommend` "
            "call; unseen history = profiled on the fly)**\n\n"
            + markdown_table(rows, columns))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", choices=["app", "place", "location", "intent"],
                        default=None, help="item kinds (default: app, place, location where "
                                           "the dataset has them)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--max-eval-users", type=int, default=None,
                        help="evaluate at most this many test users")
    parser.add_argument("--speed", action=argparse.BooleanOptionalAction, default=None,
                        help="also time the API (default: on the default dataset)")
    add_dataset_args(parser, default="frappe")
    args = parse_args(parser, argv, quick=QUICK)
    started = time.perf_counter()
    data = load_for_benchmark(args, NEEDS["bench_recommend"][0], "bench_recommend",
                              options={"netfp": {"language": "en"},
                                       "simulated": {"n_users": 140, "days": 7}})
    kinds = dataset_kinds(data.spec.kinds, args.kinds)
    events = data.events
    sections, cold = [], []
    cases = recommend_cases(events, kinds, args.quick)
    for label, (protocol, kind, options) in cases.items():
        config = EvalConfig(kind=kind, protocol=protocol, strategies=tuple(args.strategies),
                            seeds=tuple(range(args.seeds)), users="test",
                            max_users=args.max_eval_users, **options)
        try:
            evaluation = run_evaluation(events, config, progress=print)
        except DataError as exc:  # e.g. no test user with a new item of this kind
            sections.append(f"**{data.label}, {label}**: not evaluated ({exc.reason})")
            continue
        hidden = next(iter(evaluation.splits.values()))
        sections.append(f"**{data.label}, {label}** ({hidden})\n\n" + table(evaluation)
                        + "\n\n" + paired(evaluation, DEFAULT))
        if protocol == "cold":
            cold.append(evaluation.per_user.assign(seed=lambda f, o=options: f["seed"] * 100
                                                   + o["max_known"]))
    if len(cold) > 1:
        sections.append(pooled_cold(pd.concat(cold, ignore_index=True)))
    first = next((case for case in cases.values()
                  if case[0] in ("leave-out", "later-weeks")), None)
    if first is not None and not args.quick:
        context = context_section(events, first, args)
        what = "hour and weekday" if has_times(events) else "daytime, weekday and homework"
        sections.append(f"**{data.label}, {first[1]} {first[0]}, queries carry the hidden rows' "
                        f"context ({what})**\n\n{context}")
    if args.speed or (args.speed is None and args.dataset == "frappe" and args.events is None
                      and not args.quick):
        sections.append(speed(data, kinds[0]))
    minutes = (time.perf_counter() - started) / 60
    body = quick_banner(args) + "\n\n".join(sections) + (
        f"\n\nTest users only; metrics are means over them; ± is the spread over {args.seeds} "
        "seeds (leave-out, cold and apps-from-locations: each seed hides other items; time "
        "protocols: each seed resamples the users). coverage@10 = share of the catalogue in "
        "any top-10 list; popularity@10 = mean share of users who used a recommended item. "
        f"Whole run: {minutes:.1f} min.\n")
    report(args, data, "recommend", "Novelty recommendation", body)


if __name__ == "__main__":
    main()
