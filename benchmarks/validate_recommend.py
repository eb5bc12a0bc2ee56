"""Choose the recommendation defaults on validation users of several datasets, never on test.

Every case evaluates the *validation* half of a dataset's users (``split_users``, seed 0: the
same halves the benchmark never reports on) under one protocol:

- Frappe (real, untimed): leave-20%-out, and cold users keeping 1, 3 or 5 known apps;
- Foursquare NYC (real): new venues in each user's later weeks;
- netfp (real, one day): apps first used after the day's 0.6 cut-off.

Three stages, each run through ``run_evaluation`` (the real code path):
1. the anchors' own settings (EASE^R's lambda, the kNN sizes, ALS factors);
2. the hybrid (eq. H1-H2): its collaborative part, tau and the semantic part's beta (beta = 0
   makes the semantic part the popularity ranking, eq. N3);
3. the context lift gamma (eq. H3) with queries carrying the hidden rows' context (Frappe's
   daytime / weekday / homework, Foursquare's hour / weekday).

A variant's score in a case is mean(Recall@10, NDCG@10) over popular's on the same users; a
stage chooses the variant with the best mean of that ratio over the cases (and the table shows
every case, so a choice that wins one dataset and loses another is visible).

Run: python benchmarks/validate_recommend.py [--seeds 1] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import load_named, quick_banner, registered
from _recommend_cases import dataset_kinds, recommend_cases
from _report import markdown_table, write_section

from uscope.recommend.collaborative import (
    ALSStrategy,
    EASEStrategy,
    ItemKNNStrategy,
    UserKNNStrategy,
)
from uscope.recommend.evaluate import EvalConfig, run_evaluation
from uscope.recommend.hybrid import HybridStrategy

DATASETS = ("frappe", "foursquare-nyc", "netfp")
METRICS = ("Recall@10", "NDCG@10")


def validation_cases(names: list[str], quick: bool) -> dict[str, tuple[str, str, str, dict]]:
    """label -> (dataset, protocol, kind, options): every case of ``recommend_cases``."""
    cases = {}
    for name in names:
        data = DATA[name]
        kinds = dataset_kinds(data.spec.kinds, None)[:1 if quick else 2]
        for label, (protocol, kind, options) in recommend_cases(data.events, kinds,
                                                                quick).items():
            if protocol != "apps-from-locations":  # its own benchmark table; not tuned on
                cases[f"{name}: {label}"] = (name, protocol, kind, options)
    return cases


DATA: dict = {}


def anchor_variants(quick: bool = False) -> dict:
    out: dict = {"popular": "popular", "neighbours": "neighbours"}
    for l2 in (50.0, 500.0) if quick else (20.0, 50.0, 200.0, 500.0, 1000.0):
        out[f"ease l2={l2:g}"] = EASEStrategy(l2=l2)
    for n in (20, 50) if quick else (20, 50, 100, 200):
        out[f"userknn n={n}"] = UserKNNStrategy(n_neighbours=n)
    for n in (50,) if quick else (20, 50, 200):
        out[f"itemknn n={n}"] = ItemKNNStrategy(n_neighbours=n)
    grid = ((16, 1.0),) if quick else ((32, 5.0), (32, 20.0), (64, 20.0), (128, 50.0))
    for factors, reg in grid:
        out[f"als f={factors} reg={reg:g}"] = ALSStrategy(factors=factors, regularization=reg)
    return out


def hybrid_variants(anchors: dict, quick: bool = False) -> dict:
    """The hybrid over the stage-1 choices; the anchors' fitted models are shared."""
    out: dict = {"popular": "popular"}
    for label, anchor in anchors.items():
        for tau in (1.0, 10.0) if quick else (0.5, 1.0, 3.0, 10.0, 30.0):
            for beta in (1.0,) if quick else (0.0, 0.25, 0.5, 1.0):  # 0: popularity
                out[f"hybrid {label} tau={tau:g} beta={beta:g}"] = HybridStrategy(
                    anchor, tau=tau, gamma=0.0, semantic={"beta": beta})
    return out


def context_variants(best: HybridStrategy) -> dict:
    out: dict = {"popular": "popular"}
    for gamma in (0.0, 0.25, 0.5, 1.0, 2.0):
        out[f"gamma={gamma:g}"] = HybridStrategy(best.collaborative, tau=best.tau, gamma=gamma,
                                                 semantic=best.semantic)
    return out


def run_stage(variants: dict, cases: dict, seeds: tuple[int, ...], use_context: bool = False,
              max_users: int | None = None) -> pd.DataFrame:
    """variant x case: mean(Recall@10, NDCG@10) relative to popular's."""
    ratios = {}
    for case, (name, protocol, kind, options) in cases.items():
        config = EvalConfig(kind=kind, protocol=protocol, strategies=variants, seeds=seeds,
                            users="validation", use_context=use_context, max_users=max_users,
                            **options)
        started = time.perf_counter()
        results = run_evaluation(DATA[name].events, config).results
        score = results.groupby("strategy", sort=False)[list(METRICS)].mean().mean(axis=1)
        ratios[case] = score / score["popular"]
        print(f"{case}: {time.perf_counter() - started:.0f} s; best "
              f"{ratios[case].idxmax()} ({ratios[case].max():.3f}x popular)", flush=True)
    table = pd.DataFrame(ratios)
    table["mean"] = table.mean(axis=1)
    return table


def stage_table(table: pd.DataFrame, top: int) -> str:
    shown = table.sort_values("mean", ascending=False).head(top)
    rows = [{"variant": name, **{c: f"{v:.3f}" for c, v in row.items()}}
            for name, row in shown.iterrows()]
    if "popular" not in shown.index:
        rows.append({"variant": "popular", **{c: "1.000" for c in table.columns}})
    return markdown_table(rows, ["variant", *table.columns])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--dataset", nargs="+", choices=registered(), default=list(DATASETS))
    parser.add_argument("--quick", action="store_true",
                        help="one kind, few users and cases; nothing written")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    seeds = tuple(range(args.seeds))
    max_users = 60 if args.quick else None
    started = time.perf_counter()
    for name in args.dataset:
        DATA[name] = load_named(name, (), "validate_recommend",
                                **({"language": "en"} if name == "netfp" else {}))
        print(f"validation users of {DATA[name].label}", flush=True)
    cases = validation_cases(args.dataset, args.quick)

    built = anchor_variants(args.quick)  # fitted in stage 1, reused by the hybrids
    anchors = run_stage(built, cases, seeds, max_users=max_users)
    chosen = {family: anchors[anchors.index.str.startswith(family)]["mean"].idxmax()
              for family in ("ease", "userknn", "itemknn", "als")}
    hybrid_inputs = {chosen[f]: built[chosen[f]] for f in ("ease", "userknn", "als")}
    variants = hybrid_variants(hybrid_inputs, args.quick)
    hybrids = run_stage(variants, cases, seeds, max_users=max_users)
    best_name = hybrids.drop(index="popular")["mean"].idxmax()
    context_cases = {c: case for c, case in cases.items() if case[1] != "novelty"}
    if context_cases:
        contexts = run_stage(context_variants(variants[best_name]), context_cases, seeds,
                             use_context=True, max_users=max_users)
        gamma = float(contexts.drop(index="popular")["mean"].idxmax().split("=")[1])
        context_text = stage_table(contexts, 10)
    else:  # novelty on one day: its targets carry no context kept apart from the history
        gamma, context_text = None, "(no case of these datasets carries a query context)"

    choice = {"anchors": chosen, "hybrid": best_name, "gamma": gamma}
    minutes = (time.perf_counter() - started) / 60
    labels = ", ".join(DATA[name].label for name in args.dataset)
    body = (quick_banner(args) + f"Validation users only ({labels}: half of each dataset's "
            f"users, `split_users` seed 0), {len(seeds)} seed(s); cell = mean(Recall@10, "
            f"NDCG@10) / popular's on the same users; `mean` over the cases.\n\n"
            "**Stage 1: the anchors' settings**\n\n" + stage_table(anchors, 20)
            + f"\n\n**Stage 2: the hybrid (eq. H1-H2), top 12 of {len(hybrids) - 1}**\n\n"
            + stage_table(hybrids, 12) + "\n\n**Stage 3: the context lift (eq. H3), queries "
            "carry the hidden rows' context (the time protocols, leave-out and cold cases; "
            "popular is then scored in context too)**\n\n"
            + context_text
            + f"\n\nChosen: `{json.dumps(choice)}`. Whole run: {minutes:.1f} min.\n")
    print(body)
    if not (args.quick or args.no_write):
        write_section("recommend-validation", "Novelty recommendation: settings chosen on "
                      "validation users", body)


if __name__ == "__main__":
    main()
