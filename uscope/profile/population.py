"""The features of many users at once: the summaries of H_u (eq. 21) in vectorised passes.

``population_features`` returns, for a validated (user_id, timestamp)-sorted event table, the
same ``UserFeatures`` that ``user_features`` computes from each user's rows: pi_time, C_u,
sigma_u and the ranked apps, categories and places. Every statistic is one pass over the whole
table (integer codes, ``np.unique``, ``np.bincount``, ``np.lexsort``) instead of a pandas
slice per user; the per-user work left is slicing the results into lists. Ties are broken
the same way (most first, then by name), so the two paths agree value for value
(``tests/test_profile_population.py`` checks it on real data).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from uscope.data.schema import UNKNOWN_CATEGORY, use_counts
from uscope.profile.features import (
    NO_LOCATION,
    FeatureConfig,
    SessionStats,
    UserFeatures,
    user_features,
    user_slices,
)
from uscope.profile.sessions import first_of_runs, session_table

_DAY_HOURS = 7 * 24
_DENSE_LIMIT = 1 << 23  # (user, code) cells counted densely; sparser tables sort their keys


@dataclass
class _Coded:
    """A string column as integer codes (-1 = null) with each code's name and name rank."""

    codes: np.ndarray  # (n,) int64
    names: list[str]
    name_rank: np.ndarray  # (n_names,) position of each name in sorted (str) order

    @classmethod
    def of(cls, values: pd.Series) -> _Coded:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        return cls.from_codes(codes.astype(np.int64), [str(v) for v in uniques])

    @classmethod
    def from_codes(cls, codes: np.ndarray, names: list[str]) -> _Coded:
        rank = np.empty(len(names), dtype=np.int64)
        rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
        return cls(codes, names, rank)


@dataclass
class _Ranked:
    """Weighted counts of (user, code) pairs, per user most first (ties by name)."""

    user: np.ndarray  # (m,) sorted
    code: np.ndarray  # (m,)
    total: np.ndarray  # (m,) float64
    bounds: np.ndarray  # (n_users + 1,) row range of each user
    rank: np.ndarray  # (m,) position within the user's list

    def lookup(self, user: np.ndarray, code: np.ndarray, n_codes: int) -> np.ndarray:
        """Position of each (user, code) pair in its user's list (pairs must be present)."""
        keys = self.user * n_codes + self.code
        order = np.argsort(keys, kind="stable")
        found = order[np.searchsorted(keys, user * n_codes + code, sorter=order)]
        return self.rank[found]


def _ranked(user: np.ndarray, coded: _Coded, weights: np.ndarray, n_users: int,
            rows: np.ndarray | None = None) -> _Ranked:
    """``ranked_counts`` of every user at once, over ``rows`` (a mask; default all)."""
    keep = coded.codes >= 0 if rows is None else rows & (coded.codes >= 0)
    n_codes = max(len(coded.names), 1)
    keys = user[keep] * n_codes + coded.codes[keep]
    if n_users * n_codes <= _DENSE_LIMIT:  # one bincount over every (user, code) cell
        totals = np.bincount(keys, weights=weights[keep], minlength=n_users * n_codes)
        unique = np.flatnonzero(totals)  # weights are >= 1: a present pair has a total > 0
        totals = totals[unique]
    else:
        unique, inverse = np.unique(keys, return_inverse=True)
        totals = np.bincount(inverse, weights=weights[keep], minlength=len(unique))
    u, c = unique // n_codes, unique % n_codes
    order = np.lexsort((coded.name_rank[c], -totals, u))
    u, c, totals = u[order], c[order], totals[order]
    bounds = np.searchsorted(u, np.arange(n_users + 1))
    return _Ranked(u, c, totals, bounds, np.arange(len(u)) - bounds[u])


def _per_user(ranked: _Ranked, names: list[str], k: int | None = None
              ) -> list[list[tuple[str, float]]]:
    """Each user's (name, weighted count) list, cut to its first k."""
    keep = np.ones(len(ranked.user), dtype=bool) if k is None else ranked.rank < k
    labels = [names[c] for c in ranked.code[keep].tolist()]
    totals = ranked.total[keep].tolist()
    bounds = np.searchsorted(ranked.user[keep], np.arange(len(ranked.bounds))).tolist()
    return [list(zip(labels[a:b], totals[a:b])) for a, b in pairwise(bounds)]


def _used_rows(spans: list[slice], max_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Table rows of each user's most recent ``max_events`` events, and their user index."""
    starts = np.array([max(s.start, s.stop - max_events) for s in spans], dtype=np.int64)
    stops = np.array([s.stop for s in spans], dtype=np.int64)
    lengths = stops - starts
    user = np.repeat(np.arange(len(spans)), lengths)
    rows = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + \
        np.repeat(starts, lengths)
    return rows, user


def _used_columns(events: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The columns the features read, at the used rows (no copy when every row is used)."""
    columns = events[["timestamp", "app", "app_category", "location_id", "location_category",
                      "uses"]]
    if len(rows) == len(events) and (rows == np.arange(len(rows))).all():
        return columns
    return columns.iloc[rows]


def _place_labels(place_categories: _Coded, venues: _Coded) -> _Coded:
    """The place of each event: its category, else its id, else ``NO_LOCATION`` (codes)."""
    names: dict[str, int] = {}
    for name in [*place_categories.names, *venues.names, NO_LOCATION]:
        names.setdefault(name, len(names))
    of_category = np.array([names[c] for c in place_categories.names] + [-1], dtype=np.int64)
    of_venue = np.array([names[v] for v in venues.names] + [names[NO_LOCATION]], dtype=np.int64)
    codes = np.where(place_categories.codes >= 0, of_category[place_categories.codes],
                     of_venue[venues.codes])
    return _Coded.from_codes(codes, list(names))


def _pi_time(stamps: pd.DatetimeIndex, user: np.ndarray, weights: np.ndarray,
             n_users: int) -> np.ndarray:
    """pi_time of every user: (U, 7, 24) weighted shares per (weekday, hour)."""
    cell = stamps.dayofweek.to_numpy() * 24 + stamps.hour.to_numpy()
    table = np.bincount(user * _DAY_HOURS + cell, weights=weights,
                        minlength=n_users * _DAY_HOURS).reshape(n_users, 7, 24)
    return table / table.sum(axis=(1, 2), keepdims=True)


def _cooccurrence(user: np.ndarray, places: _Coded, categories: _Coded, weights: np.ndarray,
                  is_app: np.ndarray, n_users: int
                  ) -> tuple[list[list[str]], list[list[str]], list[np.ndarray]]:
    """C_u of every user (rows and columns by decreasing total, ties by name)."""
    rows = _ranked(user, places, weights, n_users, is_app)
    cols = _ranked(user, categories, weights, n_users, is_app)
    n_rows = np.diff(rows.bounds)
    n_cols = np.diff(cols.bounds)
    offsets = np.concatenate([[0], np.cumsum(n_rows * n_cols)])
    u, p, c, w = user[is_app], places.codes[is_app], categories.codes[is_app], weights[is_app]
    flat = np.zeros(offsets[-1], dtype=np.float64)
    row_of = rows.lookup(u, p, max(len(places.names), 1))
    col_of = cols.lookup(u, c, max(len(categories.names), 1))
    np.add.at(flat, offsets[u] + row_of * n_cols[u] + col_of, w)
    flat = flat.astype(np.int64)
    location_names = [[name for name, _ in user_rows] for user_rows in _per_user(rows, places.names)]
    category_names = [[name for name, _ in user_cols]
                      for user_cols in _per_user(cols, categories.names)]
    matrices = [flat[offsets[i]:offsets[i + 1]].reshape(n_rows[i], n_cols[i])
                for i in range(n_users)]
    return location_names, category_names, matrices


def _venue_categories(user: np.ndarray, venues: _Coded, place_categories: _Coded,
                      n_users: int) -> dict[tuple[int, int], str]:
    """(user, venue code) -> the venue's most frequent category among its rows (unweighted;
    ties: the category seen first, as ``value_counts`` orders them)."""
    both = (venues.codes >= 0) & (place_categories.codes >= 0)
    n_venues, n_categories = max(len(venues.names), 1), max(len(place_categories.names), 1)
    keys = (user[both] * n_venues + venues.codes[both]) * n_categories + \
        place_categories.codes[both]
    unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
    pair, category = unique // n_categories, unique % n_categories
    order = np.lexsort((first, -counts, pair))
    best = order[first_of_runs(pair[order])]
    names = place_categories.names
    return {(int(p // n_venues), int(p % n_venues)): names[c]
            for p, c in zip(pair[best].tolist(), category[best].tolist())}


def _sigma(stamps: np.ndarray, user: np.ndarray, n_users: int, timed: np.ndarray,
           gap_minutes: float) -> list[SessionStats]:
    empty = SessionStats(0, 0.0, None, None, None, None, 0)
    if not timed.any():
        return [empty] * n_users
    rows = timed[user]  # a validated table is timed throughout or not at all
    table = session_table(stamps[rows], user[rows], n_users, gap_minutes)
    return [table.stats(i) if timed[i] else empty for i in range(n_users)]


def population_features(events: pd.DataFrame, user_ids: Sequence[str],
                        config: FeatureConfig | None = None,
                        slices: dict[str, slice] | None = None) -> list[UserFeatures]:
    """``user_features`` of each listed user, computed for all of them at once; a user without
    events gets empty (cold-start) features. ``slices``: ``user_slices(events)``, when the
    caller already has it."""
    config = config or FeatureConfig()
    slices = user_slices(events) if slices is None else slices
    present = [u for u in dict.fromkeys(str(u) for u in user_ids) if u in slices]
    spans = [slices[u] for u in present]
    n = len(present)
    rows, user = _used_rows(spans, config.max_events) if n else (np.zeros(0, int),) * 2
    used = _used_columns(events, rows)
    weights = use_counts(used)
    stamps = pd.DatetimeIndex(used["timestamp"])
    timed = np.bincount(user, weights=stamps.isna(), minlength=n) == 0
    is_app = used["app"].notna().to_numpy()
    place_cats = _Coded.of(used["location_category"])
    venues = _Coded.of(used["location_id"])
    places = _place_labels(place_cats, venues)
    has_location = (place_cats.codes >= 0) | (venues.codes >= 0)
    categories = _Coded.of(used["app_category"])  # validated: null exactly when app is null

    totals = np.bincount(user, weights=weights, minlength=n)
    app_totals = np.bincount(user, weights=weights * is_app, minlength=n)
    unknown = np.zeros(len(categories.names) + 1, dtype=bool)
    if UNKNOWN_CATEGORY in categories.names:
        unknown[categories.names.index(UNKNOWN_CATEGORY)] = True
    unknown_uses = np.bincount(user, weights=weights * unknown[categories.codes], minlength=n)
    visits = np.bincount(user, weights=weights * has_location, minlength=n)
    pi = _pi_time(stamps, user, weights, n) if timed.any() else np.zeros((n, 7, 24))
    locations, app_categories, matrices = _cooccurrence(user, places, categories, weights,
                                                        is_app, n)
    k = config.top_k
    apps = _Coded.of(used["app"])
    top_apps = _per_user(_ranked(user, apps, weights, n), apps.names, k)
    located = _Coded(np.where(has_location, places.codes, -1), places.names, places.name_rank)
    top_places = _per_user(_ranked(user, located, weights, n), places.names, k)
    place_cat_counts = _per_user(_ranked(user, place_cats, weights, n), place_cats.names)
    venue_counts = _per_user(_ranked(user, venues, weights, n), venues.names, k)
    venue_index = {name: i for i, name in enumerate(venues.names)}
    with_venue = np.bincount(user, weights=venues.codes >= 0, minlength=n) > 0
    with_place_cat = np.bincount(user, weights=place_cats.codes >= 0, minlength=n) > 0
    venue_category = _venue_categories(user, venues, place_cats, n) if with_venue.any() else {}
    sigma = _sigma(stamps.to_numpy(), user, n, timed, config.session_gap_minutes)
    first_seen = list(stamps[np.searchsorted(user, np.arange(n))]) if n else []
    last_seen = list(stamps[np.searchsorted(user, np.arange(n), side="right") - 1]) if n else []

    features: dict[str, UserFeatures] = {}
    for i, uid in enumerate(present):
        total = float(totals[i])
        app_total = float(app_totals[i])
        col_sums = matrices[i].sum(axis=0)
        col_total = float(col_sums.sum())
        n_used = int(spans[i].stop - max(spans[i].start, spans[i].stop - config.max_events))
        features[uid] = UserFeatures(
            user_id=uid,
            n_events=spans[i].stop - spans[i].start,
            n_used=n_used,
            budget=config.max_events,
            first_seen=first_seen[i] if timed[i] else None,
            last_seen=last_seen[i] if timed[i] else None,
            pi_time=pi[i] if timed[i] else np.zeros((7, 24)),
            locations=locations[i],
            app_categories=app_categories[i],
            C_u=matrices[i],
            sigma=sigma[i],
            top_apps=[(a, int(c)) for a, c in top_apps[i]],
            top_categories=[(c, float(w) / col_total)
                            for c, w in zip(app_categories[i], col_sums.tolist())
                            if c != UNKNOWN_CATEGORY and w > 0][:k],
            top_places=[(p, c / total) for p, c in top_places[i]],
            unknown_share=float(unknown_uses[i]) / app_total if app_total else 0.0,
            location_recorded=bool(visits[i] > 0),
            timed=bool(timed[i]),
            n_visits=int(visits[i]),
            place_category_shares={c: w / total for c, w in place_cat_counts[i]},
            top_place_categories=[(c, w / total) for c, w in place_cat_counts[i][:k]],
            top_venues=([(v, c / total, venue_category.get((i, venue_index[v])))
                         for v, c in venue_counts[i]]
                        if with_venue[i] and with_place_cat[i] else []),
        )
    empty = events.iloc[0:0]
    return [features[str(u)] if str(u) in features else user_features(str(u), empty, config)
            for u in user_ids]


def iter_features(events: pd.DataFrame, user_ids: Sequence[str],
                  config: FeatureConfig | None = None, *, block_size: int = 4096,
                  slices: dict[str, slice] | None = None) -> Iterator[UserFeatures]:
    """Features of each listed user, ``block_size`` users per vectorised pass; a user without
    events gets empty (cold-start) features."""
    user_ids = list(user_ids)
    slices = user_slices(events) if slices is None else slices
    for start in range(0, len(user_ids), block_size):
        yield from population_features(events, user_ids[start:start + block_size], config,
                                       slices)
