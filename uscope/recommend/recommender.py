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

import copy
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uscope.data.items import item_column
from uscope.data.schema import DataError, empty_events, validate_events
from uscope.profile import ProfileEncoder, ProfileSet, profile_users
from uscope.profile.encoder import label_precision
from uscope.recommend.collaborative import ANCHORS
from uscope.recommend.hybrid import HybridStrategy
from uscope.recommend.strategies import (
    STRATEGIES,
    CatalogueIndex,
    Query,
    QueryBatch,
    Scored,
    unit_rows,
)

ANONYMOUS = "anonymous"
DEFAULT = "hybrid"  # the strategy a Recommender uses unless told (eq. H1-H3)
SAVE_FORMAT = 1
ALL_STRATEGIES = {**STRATEGIES, **ANCHORS, "hybrid": HybridStrategy}  # llm, completion: lazily


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
    if strategy not in ALL_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of "
                         f"{sorted([*ALL_STRATEGIES, 'llm', 'completion'])}")
    return ALL_STRATEGIES[strategy](**options)


class Recommender:
    """Recommend what users have not used yet, from a ``ProfileSet`` and the event table.

    Build it once (``Recommender(profiles, events)`` or ``Recommender.fit(events)``, which
    profiles the users first), then ask per user (``recommend``) or for many users at once
    (``recommend_batch``, vectorised); ``save`` / ``load`` keep a fitted recommender.
    """

    def __init__(self, profiles: ProfileSet, events: pd.DataFrame, strategy: str | Any = DEFAULT,
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

    @classmethod
    def fit(cls, events: pd.DataFrame, profiles: ProfileSet | None = None,
            strategy: str | Any = DEFAULT, *, kinds: tuple[str, ...] = (),
            profile_backend: str = "heuristic",
            encoder: str | os.PathLike | ProfileEncoder | None = None,
            **strategy_options: Any) -> Recommender:
        """Profile every user of `events` (unless `profiles` are given) and fit the strategy's
        models for `kinds` now rather than on the first request."""
        events = validate_events(events)
        if profiles is None:
            encoder = encoder if isinstance(encoder, ProfileEncoder) else ProfileEncoder(encoder)
            profiles = profile_users(events, backend=profile_backend, encoder=encoder)
        recommender = cls(profiles, events, strategy, encoder=encoder,
                          profile_backend=profile_backend, **strategy_options)
        for kind in kinds:
            fit = getattr(recommender.strategy, "fit", None)
            if fit is not None:
                fit(recommender.index, kind)
        return recommender

    def with_strategy(self, strategy: str | Any, **strategy_options: Any) -> Recommender:
        """The same profiles, events and catalogue index (fitted matrices shared) with another
        strategy: to compare strategies without rebuilding the index."""
        other = copy.copy(self)
        other.strategy = make_strategy(strategy, **strategy_options)
        return other

    @property
    def encoder(self) -> ProfileEncoder:
        """The sentence encoder for unseen histories, loaded on first use at the precision the
        catalogue's profiles were embedded with (their ``encoder`` label), whatever this
        machine's default: a recommender saved on a bf16 machine embeds new users in bf16."""
        if not isinstance(self._encoder, ProfileEncoder):
            labels = set(self.profiles.frame["encoder"])
            precisions = {label_precision(label) for label in labels}
            if len(precisions) > 1:
                raise DataError(f"the profiles were embedded at several precisions "
                                f"({', '.join(sorted(labels))}): re-embed them with one encoder",
                                field="encoder")
            self._encoder = ProfileEncoder(self._encoder, precision=precisions.pop())
        return self._encoder

    def _query(self, user_or_history: str | pd.DataFrame, context: dict | None) -> Query:
        context = self.index.contexts.check(context)
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
                         profile.embeddings()[0], context)
        user_id = str(user_or_history)
        if user_id not in self.index.user_ids:
            raise KeyError(f"user {user_id!r} is not in the profile set; pass the user's event "
                           f"history as a DataFrame to profile it on the fly")
        row = self.index.rows_of([user_id])[0]
        history = self.events.iloc[self._rows_of_user.get(user_id, [])]
        return Query(user_id, self.index.embeddings[row], history,
                     self.profiles.frame["profile"].iloc[row], self.raw_embeddings[row], context)

    def recommend(self, user_or_history: str | pd.DataFrame, kind: str = "app", k: int = 5,
                  novel_only: bool = True, explain: bool = False,
                  context: dict | None = None) -> list[Recommendation]:
        """Top-`k` items of `kind` ("app", "place", "location", "intent") for a user id or a
        history.

        `context` weights usage observed in similar situations more (eq. C1): ``hour``
        (0-24), ``weekday`` and ``location`` (the current place category) where the events
        are timed or placed, and any key of the events' ``context`` column (Frappe:
        ``daytime``, ``homework``, ``weather``...). A kind the events hold no item of (e.g.
        "app" on location-only data) raises a ``DataError`` naming the missing field.
        """
        _check_request(kind, k)
        query = self._query(user_or_history, context)
        catalogue = self.index.matrix(kind).items
        if explain or not hasattr(self.strategy, "score_batch"):
            scored = self.strategy.score(self.index, query, kind)
        else:  # no rationale asked: the vectorised path, without per-item evidence
            batch = self.index.batch([query], kind)
            scored = Scored(self.strategy.score_batch(self.index, batch, kind)[0])
        used = self.index.used(query, kind) if novel_only else set()
        mask = np.isin(catalogue, sorted(used)) if used else None
        order = top_k(scored.scores[None, :], k, None if mask is None else mask[None, :])[0]
        items = [Recommendation(catalogue[i], float(scored.scores[i]),
                                scored.evidence.get(i) if explain else None) for i in order]
        if explain and items and scored.explain is not None:
            first = items[0]
            items[0] = Recommendation(first.item, first.score,
                                      f"{first.rationale}; model says: {scored.explain()}")
        return items

    def recommend_batch(self, user_ids: Sequence[str], kind: str = "app", k: int = 5,
                        novel_only: bool = True, context: dict | None = None
                        ) -> dict[str, list[Recommendation]]:
        """``recommend`` for many users of the profile set at once: one vectorised scoring
        pass (``score_batch``) instead of a call per user; the same items and scores. Strategies
        without ``score_batch`` (llm, completion) are asked user by user."""
        _check_request(kind, k)
        if isinstance(user_ids, str):
            raise TypeError("recommend_batch takes a list of user ids, not one string")
        user_ids = [str(u) for u in user_ids]
        rows = self.index.rows_of(user_ids)
        usage = self.index.matrix(kind).counts[rows]
        batch = QueryBatch(rows, usage, self.index.embeddings[rows],
                           self.index.contexts.check(context) or None)
        if hasattr(self.strategy, "score_batch"):
            scores = self.strategy.score_batch(self.index, batch, kind)
        else:  # a strategy that scores one query at a time (llm, completion)
            scores = np.stack([self.strategy.score(self.index, self._query(user, context),
                                                   kind).scores for user in user_ids])
        mask = (usage > 0).toarray() if novel_only else None
        catalogue = self.index.matrix(kind).items
        return {user: [Recommendation(catalogue[i], float(scores[q, i])) for i in order]
                for q, (user, order) in enumerate(zip(user_ids, top_k(scores, k, mask),
                                                      strict=True))}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted recommender (profiles, events, fitted strategy) to one file; the
        encoder is saved by name and reloaded on first use. Load only files you trust
        (pickle)."""
        path = Path(path)
        if getattr(self.strategy, "name", "") in ("llm", "completion"):
            raise ValueError(f"the {self.strategy.name} strategy holds a loaded model; save its "
                             "adapter or checkpoint and build the recommender again instead")
        state = {**self.__dict__, "_encoder": _encoder_name(self._encoder)}
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as handle:
            pickle.dump({"format": SAVE_FORMAT, "state": state}, handle)
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recommender:
        """A recommender written by ``save``."""
        with Path(path).open("rb") as handle:
            saved = pickle.load(handle)  # our own format: trusted files only
        if not isinstance(saved, dict) or saved.get("format") != SAVE_FORMAT:
            raise ValueError(f"{path} is not a recommender saved by uscope "
                             f"(format {SAVE_FORMAT})")
        recommender = cls.__new__(cls)
        recommender.__dict__.update(saved["state"])
        return recommender


def _check_request(kind: str, k: int) -> None:
    item_column(kind)  # validates kind before any work
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _encoder_name(encoder: Any) -> Any:
    if isinstance(encoder, ProfileEncoder):
        return encoder.name_or_path
    return encoder


def top_k(scores: np.ndarray, k: int, used: np.ndarray | None) -> list[np.ndarray]:
    """Per row, the column indices of the `k` highest scores, best first, ties broken by
    column (= item name) order; `used` columns are left out, so a row may get fewer than k."""
    scores = np.array(scores, dtype=np.float64)
    if used is not None:
        scores[used] = -np.inf
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [row[np.isfinite(scores[q, row])] for q, row in enumerate(order)]
