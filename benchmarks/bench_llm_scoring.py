"""Speed of the `llm` strategy's catalogue scoring: prompt KV cache reused vs re-read per answer.

On the users of a registered dataset (default: real netfp; heuristic profiles, bundled
SmolLM2-135M-Instruct, 1 torch thread) the
prompt and shortlist of `LLMStrategy.score` are built for each user and kind; both scorers run
side by side on them: `LLMStrategy.answer_logprobs` (prompt encoded once, its cache copied into
each batch of answers) and `full_sequence_logprobs` (one forward over prompt + answer per
candidate: the prompt is re-read for every answer, as before the cache). Reports medians, the
speed-up and the largest score difference.

    python benchmarks/bench_llm_scoring.py [--dataset netfp] [--users 6] [--kinds intent app]

Writes the `llm-scoring` section of BENCHMARKS.md (another dataset: `llm-scoring-<name>`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _data import (
    add_dataset_args,
    first_users,
    kind_needs,
    load_for_benchmark,
    parse_args,
    quick_banner,
    report,
    require,
)
from _report import markdown_table

from uscope.profile import profile_users
from uscope.recommend import Recommender
from uscope.recommend.llm import LLMStrategy, full_sequence_logprobs

QUICK = {"users": 2, "kinds": ["intent"]}


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=6)
    ap.add_argument("--kinds", nargs="+", default=["intent", "app"],
                    choices=["intent", "app", "place", "location"])
    add_dataset_args(ap, default="netfp")
    args = parse_args(ap, argv, quick=QUICK)
    torch.set_num_threads(1)
    data = load_for_benchmark(args, (), "bench_llm_scoring", quick_users=None)
    require(data, kind_needs(args.kinds, data.spec.fields), "bench_llm_scoring")
    data = first_users(data, args.users)
    events = data.events
    users = sorted(events["user_id"].unique())
    strategy = LLMStrategy()
    recommender = Recommender(profile_users(events), events, strategy)
    model, tokenizer = strategy.load()
    rows, per_kind = [], {}
    for kind in args.kinds:
        for user in users:
            query = recommender._query(user, None)
            shortlist = strategy.shortlist(recommender.index, query, kind)
            catalogue = recommender.index.matrix(kind).items
            candidates = [catalogue[i] for i in shortlist]
            if not candidates:  # the user has used every item of this kind
                print(kind, user, "no candidates", flush=True)
                continue
            prompt = strategy.prompt(query, kind, candidates, query.profile)
            cached, t_cached = timed(strategy.answer_logprobs, prompt, candidates)
            full, t_full = timed(full_sequence_logprobs, model, tokenizer, prompt, candidates)
            per_kind.setdefault(kind, []).append({
                "prompt tokens": len(tokenizer(prompt, add_special_tokens=False)["input_ids"]),
                "candidates": len(candidates), "cached": t_cached, "full": t_full,
                "diff": float(np.abs(cached - full).max()),
                "same ranking": bool((np.argsort(-cached, kind="stable")
                                      == np.argsort(-full, kind="stable")).all())})
            print(kind, user, per_kind[kind][-1], flush=True)
    for kind, runs in per_kind.items():
        cached = statistics.median(r["cached"] for r in runs)
        full = statistics.median(r["full"] for r in runs)
        rows.append({
            "kind": kind, "users": len(runs),
            "prompt tokens (median)": int(statistics.median(r["prompt tokens"] for r in runs)),
            "candidates (median)": int(statistics.median(r["candidates"] for r in runs)),
            "cached prompt, s / user (median)": f"{cached:.2f}",
            "re-read per answer, s / user (median)": f"{full:.2f}",
            "speed-up (median of per-user ratios)":
                f"{statistics.median(r['full'] / r['cached'] for r in runs):.1f}x",
            "max abs score difference": f"{max(r['diff'] for r in runs):.1e}",
            "same ranking": f"{sum(r['same ranking'] for r in runs)}/{len(runs)}"})
    body = (quick_banner(args) + f"{data.label}: the first {len(users)} users by id, heuristic "
            "profiles, bundled "
            "SmolLM2-135M-Instruct, 1 torch thread, both scorers timed side by side on the same "
            "prompts and shortlists.\n\n" + markdown_table(rows))
    report(args, data, "llm-scoring", "Novelty recommendation: llm strategy scoring speed", body)


if __name__ == "__main__":
    main()
