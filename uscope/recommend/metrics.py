"""Ranking metrics for novelty recommendation (the paper's Tables 7-8: Recall, NDCG, MRR; the
default cut-offs are 5/10/20, pass ks=(1, 3, 5) for the paper's) and accuracy (Fig. 6: the top
recommendation is one of the held-out items).

The per-user metrics take a ranked list of items and the set of relevant (held-out) items;
relevance is binary. Beyond accuracy (RecBole): ``coverage`` (ItemCoverage) and
``mean_popularity`` (AveragePopularity) over all users' lists. ``paired_bootstrap`` compares two
strategies scored on the same users.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


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
                    ks: Sequence[int] = (5, 10, 20)) -> dict[str, float]:
    """accuracy and Recall/NDCG/MRR at every k of `ks`."""
    out = {"accuracy": accuracy(ranked, relevant)}
    for k in ks:
        out[f"Recall@{k}"] = recall_at(ranked, relevant, k)
        out[f"NDCG@{k}"] = ndcg_at(ranked, relevant, k)
        out[f"MRR@{k}"] = mrr_at(ranked, relevant, k)
    return out


def coverage(lists: Sequence[Sequence[str]], n_items: int) -> float:
    """Share of the catalogue (`n_items` items) in at least one list (RecBole's ItemCoverage)."""
    if n_items < 1:
        raise ValueError("coverage needs a catalogue of at least one item")
    return len({item for ranked in lists for item in ranked}) / n_items


def mean_popularity(lists: Sequence[Sequence[str]], popularity: dict[str, float]) -> float:
    """Mean popularity of the recommended items (RecBole's AveragePopularity: per list, then
    over lists); `popularity` = share of users who used each item (absent = 0)."""
    means = [float(np.mean([popularity.get(item, 0.0) for item in ranked]))
             for ranked in lists if len(ranked)]
    if not means:
        raise ValueError("mean_popularity needs at least one non-empty list")
    return float(np.mean(means))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = 1000,
                     seed: int = 0) -> dict[str, float]:
    """Mean of a - b (per-user metrics of two strategies on the same users), its 95% bootstrap
    interval over resampled users, and ``wins`` = share of resamples where a beats b."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError("paired_bootstrap needs two equally long, non-empty 1-d arrays")
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    difference = a - b
    picks = np.random.default_rng(seed).integers(0, len(difference), size=(n_boot, len(a)))
    means = difference[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(difference.mean()), "low": float(low), "high": float(high),
            "wins": float((means > 0).mean())}
