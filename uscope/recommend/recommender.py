"""``Recommender``: novelty recommendations of apps, locations and intents (seed paper 000,
RQ5 / Fig. 6-7 and the cold-start setting of Tables 7-8).

>>> rec = Recommender(profiles, events)                  # strategy "neighbours" by default
>>> rec.recommend("42", kind="app", k=5, explain=True)   # a user of the profile set
>>> rec.recommend(history_frame, kind="location")        # an unseen anonymous history

Items the user already used are left out (``novel_only=True``). When fewer than ``k`` items
are left, fewer are returned (never padding); an empty history is a cold start profiled from
nothing, so its ranking comes from the population.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from uscope.data.items import item_column
from uscope.data.schema import DataError, empty_events, validate_events
from uscope.profile import ProfileEncoder, ProfileSet, profile_users
from uscope.recommend.strategies import STRATEGIES, CatalogueIndex, Query, unit_rows

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Recommendation:
    item: str
    score: float
    rationale: str | None = None


def _centred_unit(rows: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Profiles written from one template share a large common component; similarity is taken
    after removing the population mean (centred cosine)."""
    return unit_rows(rows - centre)


def make_strategy(strategy: str | Any, **options: Any):
    if not isinstance(strategy, str):
        return strategy
    if strategy == "llm":
        from uscope.recommend.llm import LLMStrategy

        return LLMStrategy(**options)
    if strategy == "completion":
        from uscope.recommend.completion import CompletionStrategy

        return CompletionStrategy(**options)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of "
                         f"{sorted([*STRATEGIES, 'llm', 'completion'])}")
    return STRATEGIES[strategy](**options)


class Recommender:
    """Recommend what users have not used yet, from a ``ProfileSet`` and the event table."""

    def __init__(self, profiles: ProfileSet, events: pd.DataFrame, strategy: str | Any = "neighbours",
                 *, encoder: str | os.PathLike | ProfileEncoder | None = None,
                 profile_backend: str = "heuristic", **strategy_options: Any):
        ok = profiles.ok
        if len(ok) == 0:
            raise DataError("the profile set has no successfully profiled user")
        self.events = validate_events(events)
        self.profiles = ok
        self.strategy = make_strategy(strategy, **strategy_options)
        self.profile_backend = profile_backend
        self._encoder = encoder
        raw = ok.embeddings()  # (N, D) h_u before the MLP of eq. 24
        self.raw_embeddings = raw
        self.centre = raw.mean(axis=0)
        self.index = CatalogueIndex(ok.user_ids, _centred_unit(raw, self.centre), self.events)
        self._rows_of_user = self.events.groupby("user_id").indices  # user -> event rows

    @property
    def encoder(self) -> ProfileEncoder:
        """The sentence encoder for unseen histories, loaded on first use."""
        if not isinstance(self._encoder, ProfileEncoder):
            self._encoder = ProfileEncoder(self._encoder)
        return self._encoder

    def _query(self, user_or_history: str | pd.DataFrame, context: dict | None) -> Query:
        context = dict(context or {})
        unknown = set(context) - {"hour", "location"}
        if unknown:
            raise ValueError(f"unknown context keys {sorted(unknown)}; use 'hour', 'location'")
        if isinstance(user_or_history, pd.DataFrame):
            history = (validate_events(user_or_history) if len(user_or_history)
                       else empty_events())
            users = sorted(history["user_id"].unique().tolist()) or [ANONYMOUS]
            if len(users) > 1:
                raise ValueError(f"a history must hold one user's events, got {len(users)} users")
            profile = profile_users(history, backend=self.profile_backend, encoder=self.encoder,
                                    users=users)
            embedding = _centred_unit(profile.embeddings(), self.centre)[0]
            if np.isnan(embedding).any():
                raise RuntimeError(f"profiling the history failed: {profile.failures}")
            return Query(None, embedding, history, profile.frame["profile"].iloc[0],
                         profile.embeddings()[0], **context)
        user_id = str(user_or_history)
        if user_id not in self.index.user_ids:
            raise KeyError(f"user {user_id!r} is not in the profile set; pass the user's event "
                           f"history as a DataFrame to profile it on the fly")
        row = self.index.user_ids.index(user_id)
        history = self.events.iloc[self._rows_of_user.get(user_id, [])]
        return Query(user_id, self.index.embeddings[row], history,
                     self.profiles.frame["profile"].iloc[row], self.raw_embeddings[row], **context)

    def recommend(self, user_or_history: str | pd.DataFrame, kind: str = "app", k: int = 5,
                  novel_only: bool = True, explain: bool = False,
                  context: dict | None = None) -> list[Recommendation]:
        """Top-`k` items of `kind` ("app", "place", "location", "intent") for a user id or a
        history.

        `context` may give ``hour`` (0-24) and ``location`` (a location category) to weight
        usage observed in similar situations more. A kind the events hold no item of (e.g.
        "app" on location-only data) raises a ``DataError`` naming the missing field.
        """
        item_column(kind)  # validates kind before any work
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        query = self._query(user_or_history, context)
        catalogue = self.index.matrix(kind).items
        scored = self.strategy.score(self.index, query, kind)
        used = self.index.used(query, kind) if novel_only else set()
        candidates = [i for i in range(len(catalogue)) if catalogue[i] not in used]
        order = sorted(candidates, key=lambda i: (-scored.scores[i], catalogue[i]))[:k]
        items = [Recommendation(catalogue[i], float(scored.scores[i]),
                                scored.evidence.get(i) if explain else None) for i in order]
        if explain and items and scored.explain is not None:
            first = items[0]
            items[0] = Recommendation(first.item, first.score,
                                      f"{first.rationale}; model says: {scored.explain()}")
        return items
