"""sigma_u (U-SCOPE Sec. 5.1, session regularity) of many users in one vectorised pass.

The same statistics as ``uscope.profile.features.session_stats`` computes for one user: a
gap longer than ``gap_minutes`` starts a session; sessions per active day, median idle time
between sessions, mean session length, hour-of-day entropy / log(24) and the mean cosine of
the hour profiles of consecutive active days. Rows are sorted by user, then by time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uscope.profile.features import SessionStats

_NS_PER_DAY = 86_400 * 10**9


def _none_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _group_medians(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` within each group (NaN for an empty group)."""
    order = np.lexsort((values, group))
    values, group = values[order], group[order]
    counts = np.bincount(group, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    medians = np.full(n_groups, np.nan)
    has = counts > 0
    low = values[(starts + (counts - 1) // 2)[has]]
    high = values[(starts + counts // 2)[has]]
    medians[has] = (low + high) / 2
    return medians


def first_of_runs(*keys: np.ndarray) -> np.ndarray:
    """Mask of the rows where any key differs from the row before (the first row included)."""
    start = np.zeros(len(keys[0]), dtype=bool)
    if len(start):
        start[0] = True
    for key in keys:
        start[1:] |= key[1:] != key[:-1]
    return start


@dataclass
class SessionTable:
    """sigma_u of every user as arrays (NaN where ``SessionStats`` says None)."""

    n_sessions: np.ndarray
    active_days: np.ndarray
    median_gap_minutes: np.ndarray
    mean_session_minutes: np.ndarray
    hour_entropy: np.ndarray
    routine_consistency: np.ndarray

    def stats(self, i: int) -> SessionStats:
        if self.n_sessions[i] == 0:
            return SessionStats(0, 0.0, None, None, None, None, 0)
        return SessionStats(
            n_sessions=int(self.n_sessions[i]),
            sessions_per_day=int(self.n_sessions[i]) / int(self.active_days[i]),
            median_gap_minutes=_none_if_nan(self.median_gap_minutes[i]),
            mean_session_minutes=float(self.mean_session_minutes[i]),
            hour_entropy=float(self.hour_entropy[i]),
            routine_consistency=_none_if_nan(self.routine_consistency[i]),
            active_days=int(self.active_days[i]),
        )


def session_table(stamps: np.ndarray, user: np.ndarray, n_users: int,
                  gap_minutes: float) -> SessionTable:
    """sigma_u of users 0..n_users-1 from their timed rows (``user`` sorted; a user with no
    row gets zero sessions)."""
    nanos = stamps.astype("datetime64[ns]").view(np.int64)
    first_row = np.searchsorted(user, np.arange(n_users)).clip(max=max(len(user) - 1, 0))
    minutes = (nanos - nanos[first_row][user]) / 1e9 / 60.0 if len(user) else nanos * 0.0
    new_user = first_of_runs(user)
    starts = new_user.copy()
    starts[1:] |= np.diff(minutes) > gap_minutes
    start_index = np.flatnonzero(starts)
    end_index = np.append(start_index[1:] - 1, len(user) - 1)
    session_user = user[start_index]
    n_sessions = np.bincount(session_user, minlength=n_users)
    first, last = minutes[start_index], minutes[end_index]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_session = np.bincount(session_user, weights=last - first,
                                   minlength=n_users) / n_sessions
    same = session_user[1:] == session_user[:-1]  # idle time between sessions of one user
    medians = _group_medians((first[1:] - last[:-1])[same], session_user[1:][same], n_users)

    hours = pd.DatetimeIndex(stamps).hour.to_numpy()
    rows = np.bincount(user, minlength=n_users)
    counts = np.bincount(user * 24 + hours, minlength=n_users * 24).reshape(n_users, 24)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = counts / rows[:, None]
        terms = np.where(counts > 0, shares * np.log(np.where(counts > 0, shares, 1.0)), 0.0)
    entropy = np.maximum(0.0, -terms.sum(axis=1) / np.log(24))

    day_start = first_of_runs(user, np.floor_divide(nanos, _NS_PER_DAY))
    day_user = user[day_start]
    active_days = np.bincount(day_user, minlength=n_users)
    day_index = np.cumsum(day_start) - 1
    profiles = np.bincount(day_index * 24 + hours,
                           minlength=len(day_user) * 24).reshape(len(day_user), 24)
    unit = profiles / np.linalg.norm(profiles, axis=1, keepdims=True)
    consecutive = day_user[1:] == day_user[:-1]
    cosines = np.sum(unit[1:] * unit[:-1], axis=1)[consecutive]
    with np.errstate(invalid="ignore", divide="ignore"):
        routine = np.bincount(day_user[1:][consecutive], weights=cosines,
                              minlength=n_users) / (active_days - 1)
    routine[active_days < 2] = np.nan
    return SessionTable(n_sessions, active_days, medians, mean_session, entropy, routine)
