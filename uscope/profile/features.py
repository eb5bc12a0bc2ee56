"""Behaviour summaries of one user's history H_u (eq. 21) that the prompt x_u is built from.

U-SCOPE (seed paper 000, Sec. 5.1) summarises H_u = {(a_t, l_t, tau_t)} (eq. 21) with
- temporal activity statistics pi_time: the share of events in each (weekday, hour) cell;
- the app-location co-occurrence matrix C_u in R^{|L| x |A|}: event counts per
  (location category, app category);
- session regularity sigma_u: sessions per day, gaps between sessions, hour-of-day entropy and
  day-to-day routine consistency.

A user with zero or one events gets valid features with ``cold_start`` set, not an error. A
history longer than the budget is cut to its most recent events and the cut is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uscope.data.schema import UNKNOWN_CATEGORY, DataError

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
    pi_time: np.ndarray  # (7, 24) shares, sum 1 (all zero when n_used == 0)
    locations: list[str]  # rows of C_u
    app_categories: list[str]  # columns of C_u
    C_u: np.ndarray  # (L, A) event counts, sum n_used
    sigma: SessionStats
    top_apps: list[tuple[str, int]] = field(default_factory=list)
    top_categories: list[tuple[str, float]] = field(default_factory=list)  # known ones only
    top_places: list[tuple[str, float]] = field(default_factory=list)  # recorded ones only
    unknown_share: float = 0.0  # share of events whose app has no known category
    location_recorded: bool = False

    @property
    def truncated(self) -> bool:
        return self.n_used < self.n_events

    @property
    def cold_start(self) -> bool:
        return self.n_used <= 1

    @property
    def category_shares(self) -> dict[str, float]:
        """Share of every app category (column sums of C_u / n_used), Unknown included."""
        if self.n_used == 0:
            return {}
        totals = self.C_u.sum(axis=0) / self.n_used
        return dict(zip(self.app_categories, totals.tolist()))

    def peak_hours(self, k: int = 3) -> list[int]:
        """The k hours of day with most events (ties: earlier hour first)."""
        by_hour = self.pi_time.sum(axis=0)  # (24,)
        order = np.argsort(-by_hour, kind="stable")
        return [int(h) for h in order[:k] if by_hour[h] > 0]


def pi_time(timestamps: pd.Series) -> np.ndarray:
    """pi_time: (7, 24) share of events per (weekday, hour); sums to 1, or 0 with no events."""
    table = np.zeros((7, 24), dtype=np.float64)
    if len(timestamps) == 0:
        return table
    np.add.at(table, (timestamps.dt.dayofweek.to_numpy(), timestamps.dt.hour.to_numpy()), 1.0)
    return table / table.sum()


def cooccurrence(location_labels: Sequence[str], categories: Sequence[str]
                 ) -> tuple[list[str], list[str], np.ndarray]:
    """C_u in R^{|L| x |A|}: counts of events per (location category, app category).

    Rows and columns are ordered by decreasing total (ties by name), so C_u[0, 0] is the
    user's main place and main category.
    """
    frame = pd.DataFrame({"loc": list(location_labels), "cat": list(categories)})
    if frame.empty:
        return [], [], np.zeros((0, 0), dtype=np.int64)
    counts = frame.groupby(["loc", "cat"], sort=False).size().unstack(fill_value=0)
    rows = sorted(counts.index, key=lambda r: (-int(counts.loc[r].sum()), str(r)))
    cols = sorted(counts.columns, key=lambda c: (-int(counts[c].sum()), str(c)))
    counts = counts.loc[rows, cols]
    return [str(r) for r in rows], [str(c) for c in cols], counts.to_numpy(dtype=np.int64)


def session_stats(timestamps: pd.Series, gap_minutes: float) -> SessionStats:
    """sigma_u from sorted timestamps."""
    n = len(timestamps)
    if n == 0:
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


def user_features(user_id: str, history: pd.DataFrame, config: FeatureConfig | None = None
                  ) -> UserFeatures:
    """Features of one user's events (rows of the validated event table, sorted by time)."""
    config = config or FeatureConfig()
    n_events = len(history)
    used = history.iloc[-config.max_events:] if n_events > config.max_events else history
    stamps = used["timestamp"].reset_index(drop=True)
    has_location = used["location_category"].notna() | used["location_id"].notna()
    places = used["location_category"].fillna(used["location_id"]).fillna(NO_LOCATION)
    categories = used["app_category"].fillna(UNKNOWN_CATEGORY)
    locations, cats, C_u = cooccurrence(places.tolist(), categories.tolist())
    app_counts = used["app"].value_counts(sort=False)
    top_apps = sorted(app_counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))[:config.top_k]
    n_used = len(used)
    return UserFeatures(
        user_id=str(user_id),
        n_events=n_events,
        n_used=n_used,
        budget=config.max_events,
        first_seen=stamps.iloc[0] if n_used else None,
        last_seen=stamps.iloc[-1] if n_used else None,
        pi_time=pi_time(stamps),
        locations=locations,
        app_categories=cats,
        C_u=C_u,
        sigma=session_stats(stamps, config.session_gap_minutes),
        top_apps=[(str(a), int(c)) for a, c in top_apps],
        top_categories=_top(cats, C_u.sum(axis=0), config.top_k, UNKNOWN_CATEGORY),
        top_places=_top(locations, C_u.sum(axis=1), config.top_k, NO_LOCATION),
        unknown_share=float((categories == UNKNOWN_CATEGORY).mean()) if n_used else 0.0,
        location_recorded=bool(has_location.any()),
    )


def user_slices(events: pd.DataFrame) -> dict[str, slice]:
    """Row range of each user in a validated (user_id, timestamp)-sorted event table."""
    ids = events["user_id"].to_numpy()
    if len(ids) == 0:
        return {}
    if len(ids) > 1 and (ids[1:] < ids[:-1]).any():
        raise DataError("event table is not sorted by user_id; pass it through validate_events",
                        field="user_id")
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(ids)]])
    return {str(ids[s]): slice(int(s), int(e)) for s, e in zip(starts, ends)}


def iter_features(events: pd.DataFrame, user_ids: Sequence[str],
                  config: FeatureConfig | None = None) -> Iterator[UserFeatures]:
    """Features of each listed user; a user without events gets empty (cold-start) features."""
    slices = user_slices(events)
    empty = events.iloc[0:0]
    for uid in user_ids:
        span = slices.get(uid)
        yield user_features(uid, events.iloc[span] if span is not None else empty, config)
