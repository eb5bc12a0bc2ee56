"""Scoring strategies behind ``Recommender.recommend``.

Every strategy scores all catalogue items of a kind for one query; the recommender removes the
items the user already used (novelty) and ranks the rest.

- ``popular``: share of users who used the item (the popularity baseline).
- ``neighbours``: the paper's cold-start recipe, "the target user's historical location with the
  app, location and traffic traces of semantically similar users" (Sec. 7.1.2). The users
  nearest by profile embedding h_u (eq. 24) vote for the items they adopted: adoption
  a_n(i) = 1 - exp(-c_n(i)) saturates in the (context-weighted) use count c_n(i), votes carry
  weight w_n = max(sim, 0)^alpha, and the vote is shrunk towards the population adoption rate
  p(i) with strength kappa (empirical Bayes):
      score(i) = (sum_n w_n a_n(i) + kappa p(i)) / (sum_n w_n + kappa).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uscope.data.items import UsageMatrix
from uscope.recommend.items import context_weights


@dataclass
class Query:
    """One recommendation request, already resolved to a profile and a history."""

    user_id: str | None  # None for an unseen anonymous history
    embedding: np.ndarray  # (D,) unit-norm h_u
    history: pd.DataFrame  # the user's own events
    profile: str = ""  # the written profile y_u
    raw_embedding: np.ndarray | None = None  # (D,) h_u as profiled (not centred)
    hour: float | None = None  # context: hour of day
    location: str | None = None  # context: current location category


@dataclass
class CatalogueIndex:
    """What the strategies share: users' unit-norm embeddings and the population's usage."""

    user_ids: list[str]
    embeddings: np.ndarray  # (N, D) unit norm
    events: pd.DataFrame
    usage: dict[str, UsageMatrix] = field(default_factory=dict)  # kind -> users x items

    def matrix(self, kind: str) -> UsageMatrix:
        if kind not in self.usage:
            self.usage[kind] = UsageMatrix.build(self.events, kind, users=self.user_ids)
        return self.usage[kind]


@dataclass
class Scored:
    scores: np.ndarray  # (n_items,) higher is better
    evidence: dict[int, str] = field(default_factory=dict)  # item index -> rationale
    explain: Callable[[], str] | None = None  # a generated explanation of the whole ranking


class PopularStrategy:
    name = "popular"

    def score(self, index: CatalogueIndex, query: Query, kind: str) -> Scored:
        popularity = index.matrix(kind).popularity()
        return Scored(popularity, {i: f"used by {p:.0%} of all users"
                                   for i, p in enumerate(popularity)})


class NeighboursStrategy:
    """Context-weighted usage of the `n_neighbours` users most similar by h_u."""

    name = "neighbours"

    def __init__(self, n_neighbours: int = 50, alpha: float = 1.0, kappa: float = 5.0):
        if n_neighbours < 1 or alpha < 0 or kappa < 0:
            raise ValueError("need n_neighbours >= 1, alpha >= 0 and kappa >= 0")
        self.n_neighbours, self.alpha, self.kappa = n_neighbours, alpha, kappa

    def neighbours(self, index: CatalogueIndex, query: Query) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the nearest users (never the user itself) and their similarities."""
        similarity = index.embeddings @ query.embedding  # (N,) cosine, both unit norm
        if query.user_id is not None and query.user_id in index.user_ids:
            similarity[index.user_ids.index(query.user_id)] = -np.inf
        order = np.argsort(-similarity, kind="stable")[: self.n_neighbours]
        order = order[np.isfinite(similarity[order])]
        return order, similarity[order]

    def score(self, index: CatalogueIndex, query: Query, kind: str) -> Scored:
        full = index.matrix(kind)
        rows, similarity = self.neighbours(index, query)
        if query.hour is None and query.location is None:
            usage = UsageMatrix(full.users, full.items, full.counts[rows])
        else:
            names = [index.user_ids[r] for r in rows]
            mine = index.events[index.events["user_id"].isin(names)].reset_index(drop=True)
            weights = context_weights(mine, query.hour, query.location)
            usage = UsageMatrix.build(mine, kind, weights, users=names, items=full.items)
        weight = np.clip(similarity, 0.0, None) ** self.alpha  # (M,)
        adoption = usage.counts.copy()
        adoption.data = 1.0 - np.exp(-adoption.data)  # (M, n_items), saturating in the count
        votes = np.asarray(weight @ adoption).ravel()  # (n_items,)
        population = full.popularity()
        scores = (votes + self.kappa * population) / (weight.sum() + self.kappa)
        users_per_item = np.asarray((usage.counts > 0).sum(axis=0)).ravel()
        mean_similarity = float(similarity.mean()) if len(similarity) else 0.0
        evidence = {i: (f"used by {n} of the {len(rows)} users with the most similar profiles "
                        f"(mean centred similarity {mean_similarity:.2f}) and by "
                        f"{population[i]:.0%} of all users") for i, n in enumerate(users_per_item)}
        return Scored(scores, evidence)


STRATEGIES = {"neighbours": NeighboursStrategy, "popular": PopularStrategy}
