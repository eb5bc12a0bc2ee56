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
from scipy import sparse

from uscope.data.items import UsageMatrix, item_column, used_items
from uscope.recommend.items import ContextTable

ANY_USER = "query"  # the one row of a query history's own usage matrix
CONTEXT_CACHE = 64  # context-weighted usage matrices an index keeps


@dataclass
class Query:
    """One recommendation request, already resolved to a profile and a history."""

    user_id: str | None  # None for an unseen anonymous history
    embedding: np.ndarray  # (D,) unit-norm h_u
    history: pd.DataFrame  # the user's own events
    profile: str = ""  # the written profile y_u
    raw_embedding: np.ndarray | None = None  # (D,) h_u as profiled (not centred)
    context: dict = field(default_factory=dict)  # checked keys: see ``ContextTable``


@dataclass
class QueryBatch:
    """Many recommendation requests at once, for the vectorised ``score_batch`` of a strategy.

    ``usage`` row q holds query q's own use counts over the catalogue of the kind being scored
    (``uses``-weighted, the items in ``CatalogueIndex.matrix(kind).items`` order); ``rows``
    gives each query's row in the index, or -1 for an unseen history (never its own
    neighbour, never fitted on)."""

    rows: np.ndarray  # (Q,) int: the user's row in the index, -1 for an unseen history
    usage: sparse.csr_matrix  # (Q, n_items) the query users' own use counts of the kind
    embeddings: np.ndarray  # (Q, D) unit-norm centred h_u
    context: dict | None = None  # one context for the whole batch (keys: see Recommender)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class CatalogueIndex:
    """What the strategies share: users' unit-norm embeddings and the population's usage."""

    user_ids: list[str]
    embeddings: np.ndarray  # (N, D) unit norm
    events: pd.DataFrame
    usage: dict[str, UsageMatrix] = field(default_factory=dict)  # kind -> users x items
    _contexts: ContextTable | None = field(default=None, init=False, repr=False)
    _rows: dict[str, int] = field(init=False, repr=False)
    _by_context: dict[tuple, UsageMatrix] = field(default_factory=dict, init=False, repr=False)
    _adopted: dict[str, tuple] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rows = {user: row for row, user in enumerate(self.user_ids)}

    def __getstate__(self) -> dict:
        """Pickled without the context caches (rebuilt on first use)."""
        return {**self.__dict__, "_contexts": None, "_by_context": {}, "_adopted": {}}

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

    @property
    def contexts(self) -> ContextTable:
        """The population events' contexts, read once."""
        if self._contexts is None:
            self._contexts = ContextTable(self.events)
        return self._contexts

    def context_matrix(self, kind: str, context: dict | None) -> UsageMatrix:
        """``matrix(kind)`` with each event weighted by eq. C1 under `context` (the plain
        matrix for an empty context)."""
        if not context:
            return self.matrix(kind)
        key = (kind, tuple(sorted(context.items())))
        if key not in self._by_context:
            if len(self._by_context) >= CONTEXT_CACHE:
                self._by_context.pop(next(iter(self._by_context)))  # the oldest
            self._by_context[key] = UsageMatrix.build(
                self.events, kind, self.contexts.weights(context), users=self.user_ids,
                items=self.matrix(kind).items, column=self.column(kind))
        return self._by_context[key]

    def adoption(self, kind: str, context: dict | None = None) -> sparse.csr_matrix:
        """a_n(i) of eq. N2 for every index user, under `context`; kept with its matrix."""
        usage = self.context_matrix(kind, context)
        cached = self._adopted.get(kind)
        if cached is None or cached[0] is not usage:
            cached = (usage, adoption(usage.counts))
            if not context:  # only the plain matrix is kept (contexts have their own cache)
                self._adopted[kind] = cached
        return cached[1]

    def adoption_rate(self, kind: str, context: dict | None = None) -> np.ndarray:
        """Mean adoption over the index users, (n_items,), under `context`."""
        return np.asarray(self.adoption(kind, context).mean(axis=0)).ravel()

    def batch(self, queries: list[Query], kind: str) -> QueryBatch:
        """Single queries as one ``QueryBatch`` (they must share one context)."""
        contexts = {tuple(sorted(q.context.items())) for q in queries}
        if len(contexts) > 1:
            raise ValueError("the queries of one batch must share one context")
        items = self.matrix(kind).items
        rows, usage = [], []
        for query in queries:
            if query.user_id is not None and query.user_id in self._rows:
                rows.append(self._rows[query.user_id])
                usage.append(self.matrix(kind).counts[rows[-1]])
            else:
                rows.append(-1)
                own = query.history.assign(user_id=ANY_USER)
                usage.append(UsageMatrix.build(own, kind, users=[ANY_USER], items=items,
                                               column=self.column(kind)).counts
                             if len(query.history) else sparse.csr_matrix((1, len(items))))
        return QueryBatch(np.asarray(rows, dtype=int), sparse.vstack(usage).tocsr(),
                          np.stack([q.embedding for q in queries]), queries[0].context or None)

    def rows_of(self, user_ids: list[str]) -> np.ndarray:
        """Index rows of known users (KeyError naming the first unknown one)."""
        try:
            return np.asarray([self._rows[u] for u in user_ids], dtype=int)
        except KeyError as exc:
            raise KeyError(f"user {exc.args[0]!r} is not in the profile set") from None


@dataclass
class Scored:
    scores: np.ndarray  # (n_items,) higher is better
    evidence: dict[int, str] = field(default_factory=dict)  # item index -> rationale
    explain: Callable[[], str] | None = None  # a generated explanation of the whole ranking


class PopularStrategy:
    name = "popular"

    def score_batch(self, index: CatalogueIndex, batch: QueryBatch, kind: str) -> np.ndarray:
        """p(i) for every query (under the batch's context, the share of context-weighted
        adopters)."""
        popularity = (index.matrix(kind).popularity() if not batch.context
                      else index.adoption_rate(kind, batch.context))
        return np.tile(popularity, (len(batch), 1))

    def score(self, index: CatalogueIndex, query: Query, kind: str) -> Scored:
        popularity = self.score_batch(index, index.batch([query], kind), kind)[0]
        return Scored(popularity, {i: f"used by {p:.0%} of all users"
                                   for i, p in enumerate(index.matrix(kind).popularity())})


def adoption(counts: sparse.csr_matrix) -> sparse.csr_matrix:
    """a(i) = 1 - exp(-c(i)) (eq. N2): adoption saturating in the (weighted) use count."""
    out = counts.astype(np.float64, copy=True)
    out.data = 1.0 - np.exp(-out.data)
    return out


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

    def similarity(self, index: CatalogueIndex, batch: QueryBatch, kind: str) -> np.ndarray:
        """sim(u, n) of eq. N1 for every query u and user n of the index, (Q, N); a query's
        own row is -inf (never its own neighbour)."""
        similarity = batch.embeddings @ index.embeddings.T  # cosine, both unit norm
        if self.profile_weight < 1.0:
            vectors, idf = self.usage_vectors(index, kind)
            mine = (batch.usage > 0).toarray().astype(float)
            usage = unit_rows(mine * idf) @ vectors.T
            similarity = self.profile_weight * similarity + (1 - self.profile_weight) * usage
        known = np.flatnonzero(batch.rows >= 0)
        similarity[known, batch.rows[known]] = -np.inf
        return similarity

    def neighbours(self, index: CatalogueIndex, batch: QueryBatch,
                   kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Per query, the rows of its `n_neighbours` most similar users and their vote weights
        w_n = max(sim, 0)^alpha of eq. N2, both (Q, n); the query's own row weighs 0."""
        similarity = self.similarity(index, batch, kind)
        n = min(self.n_neighbours, similarity.shape[1])
        order = np.argsort(-similarity, axis=1, kind="stable")[:, :n]
        nearest = np.take_along_axis(similarity, order, axis=1)
        finite = np.isfinite(nearest)
        weight = np.clip(np.where(finite, nearest, 0.0), 0.0, None) ** self.alpha
        return order, np.where(finite, weight, 0.0)

    def score_batch(self, index: CatalogueIndex, batch: QueryBatch, kind: str) -> np.ndarray:
        full = index.matrix(kind)
        rows, weight = self.neighbours(index, batch, kind)
        adopted = index.adoption(kind, batch.context)  # (N, n_items) a_n(i)
        queries = np.repeat(np.arange(len(batch)), rows.shape[1])
        weights = sparse.csr_matrix((weight.ravel(), (queries, rows.ravel())),
                                    shape=(len(batch), len(index.user_ids)))
        votes = (weights @ adopted).toarray()  # (Q, n_items) sum_n w_n a_n(i)
        population = (full.popularity() if not batch.context  # p(i), in context if given
                      else index.adoption_rate(kind, batch.context))
        scores = ((votes + self.kappa * population)
                  / (weight.sum(axis=1, keepdims=True) + self.kappa))  # q(i), eq. N2
        if self.combine == "lift":  # eq. N3
            lift = np.divide(scores, population, out=np.ones_like(scores),
                             where=population > 0)
            scores = population * lift ** self.beta
        return scores

    def score(self, index: CatalogueIndex, query: Query, kind: str) -> Scored:
        batch = index.batch([query], kind)
        scores = self.score_batch(index, batch, kind)[0]
        rows, weight = self.neighbours(index, batch, kind)
        voters = rows[0][weight[0] > 0]
        users_per_item = np.asarray((index.matrix(kind).counts[voters] > 0).sum(axis=0)).ravel()
        population = index.matrix(kind).popularity()
        similarity = self.similarity(index, batch, kind)[0][rows[0]]
        similarity = similarity[np.isfinite(similarity)]
        mean_similarity = float(similarity.mean()) if similarity.size else 0.0
        basis = ("most similar profiles" if self.profile_weight == 1.0
                 else "most similar profiles and usage")
        evidence = {i: (f"used by {n} of the {len(rows[0])} users with the {basis} "
                        f"(mean similarity {mean_similarity:.2f}) and by "
                        f"{population[i]:.0%} of all users") for i, n in enumerate(users_per_item)}
        return Scored(scores, evidence)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


STRATEGIES = {"neighbours": NeighboursStrategy, "popular": PopularStrategy}
