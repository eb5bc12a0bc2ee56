"""Ranking metrics for novelty recommendation (the paper's Tables 7-8: Recall, NDCG, MRR at
cut-offs 1/3/5) and accuracy (Fig. 6: the top recommendation is one of the held-out items).

All take a ranked list of items and the set of relevant (held-out) items; relevance is binary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def recall_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """|top-k ∩ relevant| / |relevant|."""
    if not relevant:
        raise ValueError("recall needs at least one relevant item")
    return len(set(ranked[:k]) & relevant) / len(relevant)


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """DCG@k / IDCG@k with gains 1 / log2(rank + 1)."""
    if not relevant:
        raise ValueError("NDCG needs at least one relevant item")
    dcg = sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(ranked[:k])
              if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return dcg / ideal


def mrr_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """1 / rank of the first relevant item within the top k, else 0."""
    for rank, item in enumerate(ranked[:k], start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def accuracy(ranked: Sequence[str], relevant: set[str]) -> float:
    """1 when the top recommendation is a relevant item (hit@1), else 0."""
    return float(bool(ranked) and ranked[0] in relevant)


def ranking_metrics(ranked: Sequence[str], relevant: set[str],
                    ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    out = {"accuracy": accuracy(ranked, relevant)}
    for k in ks:
        out[f"Recall@{k}"] = recall_at(ranked, relevant, k)
        out[f"NDCG@{k}"] = ndcg_at(ranked, relevant, k)
        out[f"MRR@{k}"] = mrr_at(ranked, relevant, k)
    return out
