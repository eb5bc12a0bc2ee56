"""``hybrid``: collaborative signal where a user has history, U-SCOPE semantics where it is thin.

Seed paper 000 (RQ5, Tables 7-8) claims that semantic profiles win where histories are sparse;
textbook collaborative filtering wins where they are not. The hybrid lets the history length
decide, per user and per kind:

  (eq. H1) score(u, i) = w(n_u) z_cf(u, i) + (1 - w(n_u)) z_sem(u, i) + gamma log L_c(i)
  (eq. H2) w(n) = n / (n + tau)

- z_cf: a collaborative anchor's scores (``uscope.recommend.collaborative``) standardised
  over each user's candidates (the items not yet used: zero mean, unit spread), so that both
  parts speak in the same units;
- z_sem: the same standardisation of the profile-neighbour vote (``NeighboursStrategy`` on h_u
  alone, eq. N1-N3 with w = 1): what the users with the most similar written profiles adopted,
  shrunk towards the population;
- n_u: the number of distinct items of the kind the user has used; tau is the history length
  at which both parts weigh the same (n_u = 0, an anonymous or location-only history, is pure
  semantics);
- L_c(i) (eq. H3), the context lift, when a context is given: the item's share of the
  context-weighted adoption (eq. C1) over its share of the plain adoption,
      L_c(i) = (r_c(i) / sum_j r_c(j) + s) / (r(i) / sum_j r(j) + s),  s = 1 / (N n_items),
  with r(i) the mean adoption of eq. N2 over the N users: above 1 for items used more in
  situations like the query's.

tau, gamma and the semantic part's options are validated, not fixed: the defaults are the
choice of ``benchmarks/validate_recommend.py`` on the validation users of Frappe, Foursquare
NYC and netfp (``BENCHMARKS.md``, section ``recommend-validation``): ALS (implicit, 64 factors)
as the collaborative part, tau = 1 (a user with one item is already half collaborative),
beta = 0.25 in the semantic part (close to the popularity ranking, eq. N3) and gamma = 1. The
best few hybrids there lie within 0.01 of each other in the mean ratio to popular.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from uscope.recommend.collaborative import ANCHORS
from uscope.recommend.strategies import (
    CatalogueIndex,
    NeighboursStrategy,
    Query,
    QueryBatch,
    Scored,
)

SEMANTIC_DEFAULTS = {"n_neighbours": 100, "kappa": 5.0, "profile_weight": 1.0,
                     "combine": "lift", "beta": 0.25}


def standardise(scores: np.ndarray, used: np.ndarray | None = None) -> np.ndarray:
    """Each row to zero mean and unit standard deviation over its candidates (the items not
    `used`, which are never recommended); a constant row becomes 0."""
    candidates = np.ones_like(scores, dtype=bool) if used is None else ~used
    count = np.maximum(candidates.sum(axis=1, keepdims=True), 1)
    mean = np.where(candidates, scores, 0.0).sum(axis=1, keepdims=True) / count
    centred = scores - mean
    spread = np.sqrt(np.where(candidates, centred ** 2, 0.0).sum(axis=1, keepdims=True) / count)
    return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)


class HybridStrategy:
    """eq. H1-H3: history-length-weighted blend of a collaborative anchor and the profile
    neighbours, with a context lift."""

    name = "hybrid"

    def __init__(self, collaborative: str | Any = "als", tau: float = 1.0, gamma: float = 1.0,
                 semantic: dict | NeighboursStrategy | None = None,
                 collaborative_options: dict | None = None):
        """`collaborative`: an anchor's name (built with `collaborative_options`) or a built
        anchor; `semantic`: ``NeighboursStrategy`` options or a built one (both may be shared
        between variants, with their fitted models)."""
        if isinstance(collaborative, str):
            if collaborative not in ANCHORS:
                raise ValueError(f"collaborative must be one of {sorted(ANCHORS)}, "
                                 f"got {collaborative!r}")
            collaborative = ANCHORS[collaborative](**(collaborative_options or {}))
        if tau < 0 or gamma < 0:
            raise ValueError(f"need tau >= 0 and gamma >= 0, got tau={tau}, gamma={gamma}")
        self.tau, self.gamma = float(tau), float(gamma)
        self.collaborative = collaborative
        self.semantic = (semantic if isinstance(semantic, NeighboursStrategy)
                         else NeighboursStrategy(**{**SEMANTIC_DEFAULTS, **(semantic or {})}))

    def fit(self, index: CatalogueIndex, kind: str) -> None:
        """Fit the collaborative anchor for `kind` now (it fits lazily otherwise)."""
        fit = getattr(self.collaborative, "fit", None)
        if fit is not None:
            fit(index, kind)

    def weight(self, batch: QueryBatch) -> np.ndarray:
        """w(n_u) of eq. H2 for every query, (Q, 1)."""
        n = np.asarray((batch.usage > 0).sum(axis=1), dtype=np.float64)  # (Q, 1)
        if self.tau == 0:
            return (n > 0).astype(np.float64)
        return n / (n + self.tau)

    def context_lift(self, index: CatalogueIndex, batch: QueryBatch, kind: str) -> np.ndarray:
        """log L_c(i) of eq. H3, (n_items,); zeros without a context."""
        if not batch.context:
            return np.zeros(len(index.matrix(kind).items))
        plain = index.adoption_rate(kind)
        in_context = index.adoption_rate(kind, batch.context)
        smooth = 1.0 / max(len(index.user_ids) * len(plain), 1)
        share = plain / max(plain.sum(), 1e-12)
        share_in_context = in_context / max(in_context.sum(), 1e-12)
        return np.log((share_in_context + smooth) / (share + smooth))

    def score_batch(self, index: CatalogueIndex, batch: QueryBatch, kind: str) -> np.ndarray:
        weight = self.weight(batch)
        used = (batch.usage > 0).toarray()
        plain = replace(batch, context=None)  # the context enters once, through eq. H3
        scores = (1 - weight) * standardise(self.semantic.score_batch(index, plain, kind), used)
        if (weight > 0).any():
            scores += weight * standardise(self.collaborative.score_batch(index, batch, kind),
                                           used)
        if batch.context and self.gamma > 0:
            scores += self.gamma * self.context_lift(index, batch, kind)  # eq. H3
        return scores  # eq. H1

    def score(self, index: CatalogueIndex, query: Query, kind: str) -> Scored:
        batch = index.batch([query], kind)
        scores = self.score_batch(index, batch, kind)[0]
        weight = float(self.weight(batch)[0, 0])
        popularity = index.matrix(kind).popularity()
        source = self.collaborative.name
        evidence = {i: (f"{weight:.0%} from what users with similar usage adopted ({source}), "
                        f"{1 - weight:.0%} from users with similar profiles; used by "
                        f"{popularity[i]:.0%} of all users") for i in range(len(scores))}
        return Scored(scores, evidence)

    def options(self) -> dict[str, Any]:
        return {"collaborative": self.collaborative.name, "tau": self.tau,
                "gamma": self.gamma}
