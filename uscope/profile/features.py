"""Behaviour summaries of one user's history H_u (eq. 21) that the prompt x_u is built from.

U-SCOPE (seed paper 000, Sec. 5.1) summarises H_u = {(a_t, l_t, tau_t)} (eq. 21) with
- temporal activity statistics pi_time: the share of events in each (weekday, hour) cell;
- the app-location co-occurrence matrix C_u in R^{|L| x |A|}: app uses per
  (location category, app category);
- session regularity sigma_u: sessions per day, gaps between sessions, hour-of-day entropy and
  day-to-day routine consistency.

An event may lack an app (a check-in, a GPS fix: a place observation, see
``uscope.data.schema``): it counts for places and times, never for C_u, which holds app uses
only. A location-only user (no app use) has an empty C_u (0 x 0) and is summarised by their
historical locations, the cold-start input of Sec. 7.1.2: top place categories (their intents,
``top_intents``), top places (``top_venues``: venues, base stations, GPS places) and active
hours. An untimed history (Frappe) has no pi_time or sigma_u (``timed`` False). Counts respect
``uses`` (a row may stand for several uses).

A user with zero or one events gets valid features with ``cold_start`` set, not an error. A
history longer than the budget is cut to its most recent events and the cut is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uscope.data.items import ranked_counts
from uscope.data.schema import UNKNOWN_CATEGORY, DataError, use_counts

NO_LOCATION = "(no location recorded)"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class FeatureConfig:
    """How H_u is summarised."""

    max_events: int = 20_000  # history budget: only the most recent events are kept beyond it
    session_gap_minutes: float = 30.0  # a gap longer than this starts a new session
    top_k: int = 5  # apps, categories and places listed in the prompt

    def __post_init__(self) -> None:
        if self.max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {self.max_events}")
        if self.session_gap_minutes <= 0:
            raise ValueError(f"session_gap_minutes must be > 0, got {self.session_gap_minutes}")


@dataclass
class SessionStats:
    """sigma_u: session regularity indicators (None where the history cannot say)."""

    n_sessions: int
    sessions_per_day: float  # sessions / active days
    median_gap_minutes: float | None  # between consecutive sessions
    mean_session_minutes: float | None
    hour_entropy: float | None  # Shannon entropy of the hour-of-day shares / log(24), in [0, 1]
    routine_consistency: float | None  # mean cosine of hour profiles of consecutive active days
    active_days: int


@dataclass
class UserFeatures:
    """Everything the prompt says about one user."""

    user_id: str
    n_events: int  # events in the input history
    n_used: int  # events summarised (n_events cut to the budget)
    budget: int
    first_seen: pd.Timestamp | None
    last_seen: pd.Timestamp | None
    pi_time: np.ndarray  # (7, 24) shares, sum 1 (all zero when n_used == 0 or untimed)
    locations: list[str]  # rows of C_u
    app_categories: list[str]  # columns of C_u
    C_u: np.ndarray  # (L, A) app uses, sum n_app_uses; (0, 0) for a location-only user
    sigma: SessionStats
    top_apps: list[tuple[str, int]] = field(default_factory=list)
    top_categories: list[tuple[str, float]] = field(default_factory=list)  # known app categories
    top_places: list[tuple[str, float]] = field(default_factory=list)  # recorded ones only
    unknown_share: float = 0.0  # share of app uses whose app has no known category
    location_recorded: bool = False
    timed: bool = True  # False for an untimed source (no pi_time, no sigma_u)
    n_visits: int = 0  # events (uses-weighted) that record a place
    place_category_shares: dict[str, float] = field(default_factory=dict)  # of all events
    top_place_categories: list[tuple[str, float]] = field(default_factory=list)
    top_venues: list[tuple[str, float, str | None]] = field(default_factory=list)  # id, share,
    # its (most frequent) category; filled when the places have ids finer than categories

    @property
    def truncated(self) -> bool:
        return self.n_used < self.n_events

    @property
    def cold_start(self) -> bool:
        return self.n_used <= 1

    @property
    def n_app_uses(self) -> int:
        return int(self.C_u.sum())

    @property
    def uses_apps(self) -> bool:
        """Whether the history holds any app use (False: a location-only user)."""
        return self.n_app_uses > 0

    @property
    def category_shares(self) -> dict[str, float]:
        """Share of every app category (column sums of C_u / app uses), Unknown included."""
        if not self.uses_apps:
            return {}
        totals = self.C_u.sum(axis=0) / self.n_app_uses
        return dict(zip(self.app_categories, totals.tolist()))

    @property
    def intent_shares(self) -> dict[str, float]:
        """What the user does: app-category shares, or for a location-only user place-category
        shares (the intent rule of ``uscope.data.items.intent_column``)."""
        return self.category_shares if self.uses_apps else self.place_category_shares

    @property
    def top_intents(self) -> list[tuple[str, float]]:
        return self.top_categories if self.uses_apps else self.top_place_categories

    @property
    def main_place(self) -> str | None:
        """The place a faithful profile names first: the top place of C_u's rows for an app
        user, the top venue (else place) for a location-only user."""
        ranked = self.top_places if self.uses_apps or not self.top_venues else self.top_venues
        return ranked[0][0] if ranked else None

    def peak_hours(self, k: int = 3) -> list[int]:
        """The k hours of day with most events (ties: earlier hour first)."""
        by_hour = self.pi_time.sum(axis=0)  # (24,)
        order = np.argsort(-by_hour, kind="stable")
        return [int(h) for h in order[:k] if by_hour[h] > 0]


def pi_time(timestamps: pd.Series, weights: np.ndarray | None = None) -> np.ndarray:
    """pi_time: (7, 24) share of events (uses, with `weights`) per (weekday, hour); sums to 1,
    or 0 with no (timed) events."""
    table = np.zeros((7, 24), dtype=np.float64)
    if len(timestamps) == 0 or timestamps.isna().any():
        return table
    w = np.ones(len(timestamps)) if weights is None else np.asarray(weights, dtype=np.float64)
    np.add.at(table, (timestamps.dt.dayofweek.to_numpy(), timestamps.dt.hour.to_numpy()), w)
    return table / table.sum()


def cooccurrence(location_labels: Sequence[str], categories: Sequence[str],
                 weights: np.ndarray | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """C_u in R^{|L| x |A|}: app uses (`weights` per event, default 1) per (location category,
    app category).

    Rows and columns are ordered by decreasing total (ties by name), so C_u[0, 0] is the
    user's main place and main category.
    """
    frame = pd.DataFrame({"loc": list(location_labels), "cat": list(categories)})
    if frame.empty:
        return [], [], np.zeros((0, 0), dtype=np.int64)
    frame["w"] = np.ones(len(frame)) if weights is None else np.asarray(weights)
    counts = frame.groupby(["loc", "cat"], sort=False)["w"].sum().unstack(fill_value=0)
    rows = sorted(counts.index, key=lambda r: (-int(counts.loc[r].sum()), str(r)))
    cols = sorted(counts.columns, key=lambda c: (-int(counts[c].sum()), str(c)))
    counts = counts.loc[rows, cols]
    return [str(r) for r in rows], [str(c) for c in cols], counts.to_numpy(dtype=np.int64)


def session_stats(timestamps: pd.Series, gap_minutes: float) -> SessionStats:
    """sigma_u from sorted timestamps (empty for an untimed history)."""
    n = len(timestamps)
    if n == 0 or timestamps.isna().any():
        return SessionStats(0, 0.0, None, None, None, None, 0)
    minutes = (timestamps - timestamps.iloc[0]).dt.total_seconds().to_numpy() / 60.0
    gaps = np.diff(minutes)
    starts = np.concatenate([[True], gaps > gap_minutes])  # (n,) first event of each session
    start_index = np.flatnonzero(starts)
    n_sessions = len(start_index)
    first = minutes[start_index]  # (S,) session start times
    last = minutes[np.append(start_index[1:] - 1, n - 1)]  # (S,) session end times (sorted input)
    between = first[1:] - last[:-1]  # idle time between sessions
    days = timestamps.dt.normalize()
    active_days = int(days.nunique())
    hours = timestamps.dt.hour.to_numpy()
    shares = np.bincount(hours, minlength=24) / n
    nonzero = shares[shares > 0]
    entropy = max(0.0, float(-(nonzero * np.log(nonzero)).sum() / np.log(24)))
    return SessionStats(
        n_sessions=n_sessions,
        sessions_per_day=n_sessions / active_days,
        median_gap_minutes=float(np.median(between)) if len(between) else None,
        mean_session_minutes=float(np.mean(last - first)),
        hour_entropy=entropy,
        routine_consistency=_routine_consistency(days, hours),
        active_days=active_days,
    )


def _routine_consistency(days: pd.Series, hours: np.ndarray) -> float | None:
    """Mean cosine similarity of the hour-of-day profiles of consecutive active days."""
    day_codes, day_index = np.unique(days.to_numpy(), return_inverse=True)
    if len(day_codes) < 2:
        return None
    profiles = np.zeros((len(day_codes), 24))  # (D, 24)
    np.add.at(profiles, (day_index, hours), 1.0)
    unit = profiles / np.linalg.norm(profiles, axis=1, keepdims=True)
    return float(np.mean(np.sum(unit[1:] * unit[:-1], axis=1)))


def _top(labels: Sequence[str], weights: np.ndarray, k: int, exclude: str) -> list[tuple[str, float]]:
    total = float(weights.sum())
    pairs = [(lab, float(w) / total) for lab, w in zip(labels, weights) if lab != exclude and w > 0]
    return pairs[:k]


def _venues(used: pd.DataFrame, weights: np.ndarray, total: float, k: int
            ) -> list[tuple[str, float, str | None]]:
    """Top place ids with their share and most frequent category (ids finer than categories)."""
    if used["location_id"].isna().all() or used["location_category"].isna().all():
        return []
    counts = ranked_counts(used["location_id"], weights).iloc[:k]
    placed = used[used["location_id"].isin(counts.index) & used["location_category"].notna()]
    category = placed.groupby("location_id")["location_category"].agg(
        lambda c: c.value_counts().index[0])
    return [(str(v), float(n) / total, category.get(v)) for v, n in counts.items()]


def user_features(user_id: str, history: pd.DataFrame, config: FeatureConfig | None = None
                  ) -> UserFeatures:
    """Features of one user's events (rows of the validated event table, sorted by time)."""
    config = config or FeatureConfig()
    n_events = len(history)
    used = history.iloc[-config.max_events:] if n_events > config.max_events else history
    stamps = used["timestamp"].reset_index(drop=True)
    timed = bool(stamps.notna().all())
    weights = use_counts(used)  # (n_used,) uses per row
    total = float(weights.sum())
    has_location = (used["location_category"].notna() | used["location_id"].notna()).to_numpy()
    places = used["location_category"].fillna(used["location_id"]).fillna(NO_LOCATION)
    is_app = used["app"].notna().to_numpy()  # events without an app never enter C_u
    categories = used["app_category"].fillna(UNKNOWN_CATEGORY)[is_app]
    locations, cats, C_u = cooccurrence(places[is_app].tolist(), categories.tolist(),
                                        weights[is_app])
    app_counts = ranked_counts(used["app"], weights)
    place_counts = ranked_counts(places.where(has_location), weights)
    place_cats = ranked_counts(used["location_category"], weights)
    app_total = float(weights[is_app].sum())
    n_used = len(used)
    return UserFeatures(
        user_id=str(user_id),
        n_events=n_events,
        n_used=n_used,
        budget=config.max_events,
        first_seen=stamps.iloc[0] if n_used and timed else None,
        last_seen=stamps.iloc[-1] if n_used and timed else None,
        pi_time=pi_time(stamps, weights),
        locations=locations,
        app_categories=cats,
        C_u=C_u,
        sigma=session_stats(stamps, config.session_gap_minutes),
        top_apps=[(str(a), int(c)) for a, c in app_counts.iloc[:config.top_k].items()],
        top_categories=_top(cats, C_u.sum(axis=0), config.top_k, UNKNOWN_CATEGORY),
        top_places=[(str(p), float(n) / total)
                    for p, n in place_counts.iloc[:config.top_k].items()],
        unknown_share=(float(weights[is_app][categories.to_numpy() == UNKNOWN_CATEGORY].sum())
                       / app_total if app_total else 0.0),
        location_recorded=bool(has_location.any()),
        timed=timed,
        n_visits=int(weights[has_location].sum()),
        place_category_shares={c: float(n) / total for c, n in place_cats.items()},
        top_place_categories=[(str(c), float(n) / total)
                              for c, n in place_cats.iloc[:config.top_k].items()],
        top_venues=_venues(used, weights, total, config.top_k),
    )


def user_slices(events: pd.DataFrame) -> dict[str, slice]:
    """Row range of each user in a validated (user_id, timestamp)-sorted event table."""
    if len(events) == 0:
        return {}
    codes, ids = pd.factorize(events["user_id"])  # codes in order of first appearance
    ids = [str(u) for u in ids]
    if (np.diff(codes) < 0).any() or ids != sorted(ids):
        raise DataError("event table is not sorted by user_id; pass it through validate_events",
                        field="user_id")
    ends = np.cumsum(np.bincount(codes, minlength=len(ids))).tolist()
    return {uid: slice(start, end) for uid, start, end in zip(ids, [0, *ends[:-1]], ends)}
