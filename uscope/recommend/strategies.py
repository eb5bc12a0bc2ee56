"""Scoring strategies behind ``Recommender.recommend``.

Every strategy scores all catalogue items of a kind for one query; the recommender removes the
items the user already used (novelty) and ranks the rest.

- ``popular``: share of users who used the item, p(i) (the popularity baseline).
- ``neighbours``: the paper's cold-start recipe, "the target user's historical location with the
  app, location and traffic traces of semantically similar users" (Sec. 7.1.2). The users
  nearest to the query user u vote for the items they adopted.

  Similarity (eq. N1). With ``profile_weight`` w = 1 it is the centred cosine of the profile
  embeddings h_u (eq. 24); w < 1 (the default is 0.5) mixes in the classic user-kNN
  collaborative signal, the cosine of the users' usage vectors of the recommended kind:
      sim(u, n) = w cos(h_u, h_n) + (1 - w) cos(x_u, x_n),
      x_u(i) = 1[u used i] * idf(i),  idf(i) = log((N + 1) / (N p(i) + 1)),
  so a shared rare item says more about two users than a shared ubiquitous one.

  Vote (eq. N2). Adoption a_n(i) = 1 - exp(-c_n(i)) saturates in the (context-weighted) use
  count c_n(i); the `n_neighbours` most similar users vote with weight
  w_n = max(sim, 0)^alpha, and the vote is shrunk towards the population adoption rate p(i)
  with strength kappa (empirical Bayes):
      q(i) = (sum_n w_n a_n(i) + kappa p(i)) / (sum_n w_n + kappa).

  Score (eq. N3). ``combine="shrink"`` ranks by q(i) itself. ``combine="lift"``
  ranks by popularity re-weighted by how much more the neighbours adopted the item than the
  population did:
      score(i) = p(i) * (q(i) / p(i))^beta,
  so beta = 0 is the popularity ranking and beta = 1 is q(i); items no user adopted score 0.

  Defaults (n = 150, kappa = 5, w = 0.5, ``combine="lift"``, beta = 0.5) were chosen on the
  netfp temporal validation split of ``benchmarks/validate_recommend.py`` (two inner cut-offs,
  apps and intents, never the bench's test window): the best mean of Recall@5 and NDCG@5
  there, +0.002 over ``popular`` where the earlier profile-only default (n = 50, w = 1,
  ``combine="shrink"``) was -0.012. Neither beats ``popular`` beyond the bootstrap spread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uscope.data.items import UsageMatrix, item_column, used_items
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

    def column(self, kind: str) -> str:
        """The event column of `kind`, decided on the whole population (for "intent": app
        categories, or place categories when no event is an app use)."""
        return item_column(kind, self.events)

    def used(self, query: Query, kind: str) -> set[str]:
        """The items of `kind` the query user already used."""
        return used_items(query.history, kind, self.column(kind))

    def matrix(self, kind: str) -> UsageMatrix:
        """users x items of `kind`; raises naming the field when no event has such an item."""
        if kind not in self.usage:
            self.usage[kind] = UsageMatrix.build(self.events, kind, users=self.user_ids,
                                                 column=self.column(kind))
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
    """Context-weighted usage of the `n_neighbours` users most similar to the query user.

    `profile_weight` w of eq. N1 (1: profile embedding only), `combine` and `beta` of eq. N3.
    """

    name = "neighbours"
    COMBINE = ("shrink", "lift")

    def __init__(self, n_neighbours: int = 150, alpha: float = 1.0, kappa: float = 5.0,
                 profile_weight: float = 0.5, combine: str = "lift", beta: float = 0.5):
        if n_neighbours < 1 or alpha < 0 or kappa < 0:
            raise ValueError("need n_neighbours >= 1, alpha >= 0 and kappa >= 0")
        if not 0.0 <= profile_weight <= 1.0:
            raise ValueError(f"profile_weight must lie in [0, 1], got {profile_weight}")
        if combine not in self.COMBINE:
            raise ValueError(f"combine must be one of {self.COMBINE}, got {combine!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.n_neighbours, self.alpha, self.kappa = n_neighbours, alpha, kappa
        self.profile_weight, self.combine, self.beta = profile_weight, combine, beta
        self._usage_vectors: tuple[UsageMatrix, np.ndarray, np.ndarray] | None = None

    def usage_vectors(self, index: CatalogueIndex, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """The unit-norm IDF-weighted usage vectors x_u of eq. N1 (N, n_items), and idf."""
        full = index.matrix(kind)
        if self._usage_vectors is None or self._usage_vectors[0] is not full:  # one at a time
            used = (full.counts > 0).toarray().astype(float)  # (N, n_items)
            idf = np.log((len(full.users) + 1) / (used.sum(axis=0) + 1))  # eq. N1
            self._usage_vectors = (full, unit_rows(used * idf), idf)
        return self._usage_vectors[1], self._usage_vectors[2]

    def similarity(self, index: CatalogueIndex, query: Query, kind: str) -> np.ndarray:
        """sim(u, n) of eq. N1 for every user n of the index, (N,)."""
        similarity = index.embeddings @ query.embedding  # cosine, both unit norm
        if self.profile_weight < 1.0:
            vectors, idf = self.usage_vectors(index, kind)
            items = index.matrix(kind).items
            mine = np.isin(items, sorted(index.used(query, kind))).astype(float)
            usage = vectors @ unit_rows(mine * idf)
            similarity = self.profile_weight * similarity + (1 - self.profile_weight) * usage
        return similarity

    def neighbours(self, index: CatalogueIndex, query: Query,
                   kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the nearest users (never the user itself) and their similarities."""
        similarity = self.similarity(index, query, kind)
        if query.user_id is not None and query.user_id in index.user_ids:
            similarity[index.user_ids.index(query.user_id)] = -np.inf
        order = np.argsort(-similarity, kind="stable")[: self.n_neighbours]
        order = order[np.isfinite(similarity[order])]
        return order, similarity[order]

    def score(self, index: CatalogueIndex, query: Query, kind: str) -> Scored:
        full = index.matrix(kind)
        rows, similarity = self.neighbours(index, query, kind)
        if query.hour is None and query.location is None:
            usage = UsageMatrix(full.users, full.items, full.counts[rows])
        else:
            names = [index.user_ids[r] for r in rows]
            mine = index.events[index.events["user_id"].isin(names)].reset_index(drop=True)
            weights = context_weights(mine, query.hour, query.location)
            usage = UsageMatrix.build(mine, kind, weights, users=names, items=full.items,
                                      column=index.column(kind))
        weight = np.clip(similarity, 0.0, None) ** self.alpha  # (M,) eq. N2
        adoption = usage.counts.copy()
        adoption.data = 1.0 - np.exp(-adoption.data)  # (M, n_items), saturating in the count
        votes = np.asarray(weight @ adoption).ravel()  # (n_items,)
        population = full.popularity()
        scores = (votes + self.kappa * population) / (weight.sum() + self.kappa)  # eq. N2
        if self.combine == "lift":  # eq. N3
            lift = np.divide(scores, population, out=np.ones_like(scores), where=population > 0)
            scores = population * lift ** self.beta
        users_per_item = np.asarray((usage.counts > 0).sum(axis=0)).ravel()
        mean_similarity = float(similarity.mean()) if len(similarity) else 0.0
        basis = ("most similar profiles" if self.profile_weight == 1.0
                 else "most similar profiles and usage")
        evidence = {i: (f"used by {n} of the {len(rows)} users with the {basis} "
                        f"(mean similarity {mean_similarity:.2f}) and by "
                        f"{population[i]:.0%} of all users") for i, n in enumerate(users_per_item)}
        return Scored(scores, evidence)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


STRATEGIES = {"neighbours": NeighboursStrategy, "popular": PopularStrategy}
