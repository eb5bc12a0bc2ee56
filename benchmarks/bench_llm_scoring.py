"""Speed of the `llm` strategy's catalogue scoring: prompt KV cache reused vs re-read per answer.

On real netfp users (heuristic profiles, bundled SmolLM2-135M-Instruct, 1 torch thread) the
prompt and shortlist of `LLMStrategy.score` are built for each user and kind; both scorers run
side by side on them: `LLMStrategy.answer_logprobs` (prompt encoded once, its cache copied into
each batch of answers) and `full_sequence_logprobs` (one forward over prompt + answer per
candidate: the prompt is re-read for every answer, as before the cache). Reports medians, the
speed-up and the largest score difference.

    python benchmarks/bench_llm_scoring.py [--users 6]

Writes the `llm-scoring` section of BENCHMARKS.md.
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

from _report import markdown_table, write_section

from uscope.data import read_netfp
from uscope.profile import profile_users
from uscope.recommend import Recommender
from uscope.recommend.llm import LLMStrategy, full_sequence_logprobs

NETFP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "netfp" / "data0117_dev.csv"


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=6)
    ap.add_argument("--kinds", nargs="+", default=["intent", "app"])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    events, _ = read_netfp(NETFP)
    users = sorted(events["user_id"].unique())[: args.users]
    events = events[events["user_id"].isin(users)]
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
    body = (f"Real netfp users (the first {len(users)} by id), heuristic profiles, bundled "
            "SmolLM2-135M-Instruct, 1 torch thread, both scorers timed side by side on the same "
            "prompts and shortlists.\n\n" + markdown_table(rows))
    print(body)
    if not args.no_write:
        write_section("llm-scoring", "Novelty recommendation: llm strategy scoring speed", body)


if __name__ == "__main__":
    main()
