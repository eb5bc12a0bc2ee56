"""Quality checks of profiles y_u (eq. 23) and embeddings h_u (eq. 24), used by the benchmarks.

- Faithfulness: does a profile name the user's actual top categories and places? The
  categories are the user's intents (``UserFeatures.top_intents``): app categories, or for a
  location-only user place categories; the place is ``UserFeatures.main_place``.
- Embedding usefulness: do nearest neighbours by h_u share more category usage (intent shares)
  than random pairs? The lift is mean usage similarity of neighbour pairs / that of random
  pairs (1 = no better than chance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from uscope.profile.features import UserFeatures


def mentions(text: str | None, names: Sequence[str]) -> list[bool]:
    """Whether each name occurs in the text (case-insensitive)."""
    lowered = (text or "").casefold()
    return [name.casefold() in lowered for name in names]


@dataclass(frozen=True)
class Faithfulness:
    """Mention rates over users (each in [0, 1]); ``n_place_users`` have recorded places.
    ``n_location_only`` of the ``n_users`` have no app use (their categories are places')."""

    n_users: int
    top1_category: float  # share of users whose main category is named
    top3_categories: float  # mean share of the (up to) 3 main categories named
    n_place_users: int
    top1_place: float | None  # share of users with places whose main place is named
    n_location_only: int = 0


def faithfulness(texts: Sequence[str | None], features: Sequence[UserFeatures]) -> Faithfulness:
    """Mention rates of each user's top categories and top place in their profile text."""
    if len(texts) != len(features):
        raise ValueError(f"{len(texts)} texts for {len(features)} users")
    top1, top3, place, location_only = [], [], [], 0
    for text, f in zip(texts, features):
        cats = [c for c, _ in f.top_intents[:3]]
        if cats:
            hits = mentions(text, cats)
            top1.append(hits[0])
            top3.append(float(np.mean(hits)))
            location_only += not f.uses_apps
        if f.main_place is not None:
            place.append(mentions(text, [f.main_place])[0])
    return Faithfulness(
        n_users=len(top1),
        top1_category=float(np.mean(top1)) if top1 else float("nan"),
        top3_categories=float(np.mean(top3)) if top3 else float("nan"),
        n_place_users=len(place),
        top1_place=float(np.mean(place)) if place else None,
        n_location_only=location_only,
    )


def category_usage(features: Sequence[UserFeatures]) -> tuple[np.ndarray, list[str]]:
    """(N, A) category shares per user, A = the users' intents (``intent_shares``: app
    categories, place categories for location-only users); rows sum to 1 for app users, 0
    without events."""
    names = sorted({c for f in features for c in f.intent_shares})
    index = {c: j for j, c in enumerate(names)}
    usage = np.zeros((len(features), len(names)))  # (N, A)
    for i, f in enumerate(features):
        for c, share in f.intent_shares.items():
            usage[i, index[c]] = share
    return usage, names


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


@dataclass(frozen=True)
class NeighbourLift:
    """Usage similarity of embedding neighbours vs random pairs."""

    k: int
    neighbour_similarity: float
    random_similarity: float

    @property
    def lift(self) -> float:
        return self.neighbour_similarity / self.random_similarity


def neighbour_lift(embeddings: np.ndarray, usage: np.ndarray, *, k: int = 5,
                   n_random: int = 20_000, seed: int = 0) -> NeighbourLift:
    """Mean cosine similarity of usage between each user and its k nearest neighbours by
    embedding cosine (self excluded), against the same over random distinct pairs."""
    n = len(embeddings)
    if n != len(usage) or n < k + 1:
        raise ValueError(f"need matching rows and more than k={k} users, got {n} and {len(usage)}")
    e, u = _unit(np.asarray(embeddings, dtype=np.float64)), _unit(usage)
    sim = e @ e.T  # (N, N) embedding cosine
    np.fill_diagonal(sim, -np.inf)
    neighbours = np.argsort(-sim, axis=1, kind="stable")[:, :k]  # (N, k)
    near = np.einsum("nd,nkd->nk", u, u[neighbours])  # (N, k) usage cosine of neighbour pairs
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, n_random)
    b = (a + rng.integers(1, n, n_random)) % n  # uniform over the other users
    far = np.einsum("nd,nd->n", u[a], u[b])
    return NeighbourLift(k=k, neighbour_similarity=float(near.mean()),
                         random_similarity=float(far.mean()))
