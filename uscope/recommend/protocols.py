"""Evaluation protocols for novelty recommendation: which events a model sees, what it must find.

Every protocol returns a ``Split`` (RecBole / Microsoft recommenders conventions):

| name                  | what is hidden                                                  |
|-----------------------|-----------------------------------------------------------------|
| "leave-out"           | a random share of each evaluated user's distinct items (untimed) |
| "cold-N"              | all but N random items of each evaluated user (cold-start users) |
| "later-weeks"         | each user's later weeks; targets = items new in those weeks      |
| "novelty"             | everything after one global cut-off (``uscope.data.splits``)     |
| "apps-from-locations" | held-out users' apps; they keep their places and times only      |

``visible`` holds every event a model may see: the fitting data and the evaluated users' known
histories. ``targets`` maps each evaluated user (one with at least one target) to the hidden
items of ``kind``; no target is ever among that user's visible items. ``users`` restricts who
is evaluated; users outside it stay completely visible, except in the two time-based
protocols ("later-weeks", "novelty"), which cut *every* user at their history so nothing from
the future leaks. Random choices are seeded per user (the seed and the user id), so a user's
hidden items do not depend on who else is evaluated. Every protocol refuses synthetic events
(``require_real``) and raises a ``DataError`` naming the field the data lacks.

Context-aware convention: the context of the test interaction is known at query time, so each
Split carries ``contexts[user] = query_context(hidden target rows)``.

Validation and test users (``split_users``): settings (strategy options, k, weights) are chosen
on the validation users only; the test users are used once, to report.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uscope.data.items import item_column, item_counts, ranked_counts, require_items, used_items
from uscope.data.schema import (
    DataError,
    has_places,
    has_times,
    parse_context,
    recorded_place,
    require_times,
    use_counts,
    validate_events,
)
from uscope.data.splits import cutoff_time, novelty_split, require_real

CONTEXT_KEYS = ("daytime", "weekday", "homework")  # Frappe buckets a query carries


@dataclass
class Split:
    """One evaluation split: what a model may see, and per evaluated user what it must find."""

    name: str
    visible: pd.DataFrame
    targets: dict[str, set[str]]
    kind: str
    contexts: dict[str, dict] = field(default_factory=dict)
    description: str = ""

    @property
    def users(self) -> list[str]:
        """The evaluated users, sorted."""
        return sorted(self.targets)

    def mean_targets(self) -> float:
        return float(np.mean([len(t) for t in self.targets.values()])) if self.targets else 0.0


def location_only(events: pd.DataFrame) -> pd.DataFrame:
    """The source-domain view: places and times kept, apps and their traffic removed (null,
    not "Unknown": the events become place observations); events with no place are dropped."""
    hidden = events[recorded_place(events)].copy()
    hidden[["app", "app_category", "traffic_bytes"]] = None
    return validate_events(hidden, source="location_only")


def split_users(users: Iterable[str], validation_fraction: float = 0.5, seed: int = 0
                ) -> tuple[list[str], list[str]]:
    """(validation, test) users: disjoint, covering, each sorted; a seeded permutation of the
    sorted distinct ids. Choose settings on the validation users; the test users only report."""
    if not 0 <= validation_fraction <= 1:
        raise ValueError("validation_fraction must lie in [0, 1]")
    ordered = sorted({str(u) for u in users})
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    n_validation = _half_up(validation_fraction * len(ordered))
    return sorted(shuffled[:n_validation]), sorted(shuffled[n_validation:])


def query_context(rows: pd.DataFrame, exclude: str | None = None) -> dict:
    """The most common context of a user's hidden target rows (``uses``-weighted, ties by name).

    Timed rows give ``hour`` and ``weekday`` (lowercase name); a ``context`` column (Frappe's
    ``key=value;...``) gives the most common known value of daytime, weekday and homework
    ("unknown" is skipped); ``location_category`` gives ``location``. `exclude` names the item
    column, which is never put in the context (it would give the target away); for venues
    (``location_id``) their category is left out too.
    """
    out: dict = {}
    if rows.empty:
        return out
    weights = use_counts(rows)
    if has_times(rows):
        stamps = rows["timestamp"]
        out["hour"] = int(_most_common(stamps.dt.hour, weights))
        out["weekday"] = _most_common(stamps.dt.day_name().str.lower(), weights)
    if "context" in rows.columns and rows["context"].notna().any():
        buckets = parse_context(rows["context"])
        for key in CONTEXT_KEYS:
            if key in buckets.columns:
                values = buckets[key].where(buckets[key] != "unknown")
                if values.notna().any():
                    out[key] = _most_common(values, weights)
    if (exclude not in ("location_category", "location_id") and "location_category" in rows.columns
            and rows["location_category"].notna().any()):  # a venue's category gives it away
        out["location"] = _most_common(rows["location_category"], weights)
    return out


def leave_out_split(events: pd.DataFrame, kind: str = "app", fraction: float = 0.2,
                    seed: int = 0, users: Iterable[str] | None = None) -> Split:
    """Hide round(fraction * n) of each evaluated user's n distinct items (at least 1, always
    keeping 1; users with fewer than 2 items are not evaluated); every row of a hidden item
    leaves ``visible``. Needs no times (Frappe)."""
    if not 0 < fraction < 1:
        raise ValueError("fraction must lie strictly between 0 and 1")
    column = _prepare(events, kind, "leave_out_split")

    def n_hidden(n_items: int) -> int:
        return min(max(1, _half_up(fraction * n_items)), n_items - 1)

    return _hide_items(events, kind, column, users, seed, min_items=2, n_hidden=n_hidden,
                       name="leave-out",
                       description=f"{fraction:.0%} of each user's distinct {kind} items "
                                   f"hidden at random (seed {seed})")


def cold_user_split(events: pd.DataFrame, kind: str = "app", max_known: int = 5, seed: int = 0,
                    users: Iterable[str] | None = None) -> Split:
    """Cold-start users: each evaluated user (more than `max_known` distinct items) keeps only
    `max_known` random items (all their rows); the other items are the targets."""
    if max_known < 1:
        raise ValueError("max_known must be at least 1")
    column = _prepare(events, kind, "cold_user_split")
    return _hide_items(events, kind, column, users, seed, min_items=max_known + 1,
                       n_hidden=lambda n_items: n_items - max_known, name=f"cold-{max_known}",
                       description=f"each user keeps {max_known} random {kind} items, the "
                                   f"rest hidden (seed {seed})")


def later_weeks_split(events: pd.DataFrame, kind: str, history_fraction: float = 0.7,
                      min_history_weeks: int = 2, users: Iterable[str] | None = None) -> Split:
    """Per-user temporal split by the user's own weeks.

    Week rule: a user's weeks are the Monday-to-Sunday calendar weeks in which they have at
    least one event, ranked in time order (for Foursquare NYC exactly the reader's week rank).
    The first h = max(min_history_weeks, floor(history_fraction * n_weeks)) are history; the
    targets are items first used in the later weeks (new to the user). ``visible`` is every
    user's history (evaluated or not): all later events are dropped. Users with fewer than
    min_history_weeks + 1 weeks are not evaluated (their history stays visible).
    """
    if not 0 < history_fraction < 1:
        raise ValueError("history_fraction must lie strictly between 0 and 1")
    if min_history_weeks < 1:
        raise ValueError("min_history_weeks must be at least 1")
    require_times(events, "the later-weeks split")
    column = _prepare(events, kind, "later_weeks_split")
    if events.empty:
        raise DataError("the later-weeks split needs events, and there are none",
                        field="timestamp")
    events = events.reset_index(drop=True)
    stamps = events["timestamp"]
    monday = stamps.dt.normalize() - pd.to_timedelta(stamps.dt.dayofweek, unit="D")
    user_ids = events["user_id"].astype(str)
    week = monday.groupby(user_ids).rank(method="dense").astype(int) - 1
    n_weeks = week.groupby(user_ids).transform("max") + 1
    history_weeks = np.maximum(min_history_weeks,
                               np.floor(history_fraction * n_weeks).astype(int))
    in_history = (week < history_weeks).to_numpy()
    enough = (n_weeks >= min_history_weeks + 1).to_numpy()
    allowed = _allowed(events, users)
    targets, target_rows = {}, {}
    evaluated = enough & user_ids.isin(allowed).to_numpy()
    for user, rows in events[evaluated].groupby(user_ids[evaluated]):
        past = in_history[rows.index]
        new = used_items(rows[~past], kind, column) - used_items(rows[past], kind, column)
        if new:
            later = rows[~past]
            targets[user] = new
            target_rows[user] = later[_item_values(later, column).isin(new).to_numpy()]
    if not targets:
        raise DataError(f"no evaluated user has {min_history_weeks + 1}+ weeks and a new "
                        f"{kind!r} item in their later weeks", field="timestamp")
    description = (f"each user's weeks after the first max({min_history_weeks}, "
                   f"floor({history_fraction} x weeks)) hidden; targets = {kind} items new "
                   "in them")
    return _finish("later-weeks", kind, column, events[in_history], targets, target_rows,
                   description)


def novelty_split_protocol(events: pd.DataFrame, kind: str, cutoff: str | float = 0.6,
                           users: Iterable[str] | None = None) -> Split:
    """One global cut-off (a timestamp or a fraction of the time span): everyone's history is
    before it; targets are the items a user first used after it (``novelty_split``)."""
    require_times(events, "the novelty split")
    column = _prepare(events, kind, "novelty_split_protocol")
    moment = cutoff_time(events, cutoff)
    history, found = novelty_split(events, kind, moment)
    allowed = _allowed(events, users)
    targets = {user: items for user, items in found.items() if user in allowed}
    if not targets:
        raise DataError(f"no evaluated user uses a new {kind!r} item after the cut-off "
                        f"{moment}; move the cut-off", field="timestamp")
    future = events[events["timestamp"] >= moment]
    target_rows = {}
    for user, rows in future[future["user_id"].isin(list(targets))].groupby("user_id"):
        target_rows[str(user)] = rows[_item_values(rows, column).isin(targets[str(user)])
                                      .to_numpy()]
    return _finish("novelty", kind, column, history, targets, target_rows,
                   f"all events from {moment} on hidden; targets = {kind} items new after it")


def apps_from_locations_split(events: pd.DataFrame, seed: int = 0, holdout_fraction: float = 0.3,
                              n_targets: int = 5, users: Iterable[str] | None = None) -> Split:
    """The coldstart protocol: a seeded share of the users (of `users`, default all) is held
    out; their events become place observations (``location_only``) and their targets are
    their `n_targets` most used apps (``uses``-weighted). Needs apps and places."""
    if not 0 < holdout_fraction <= 1:
        raise ValueError("holdout_fraction must lie in (0, 1]")
    if n_targets < 1:
        raise ValueError("n_targets must be at least 1")
    require_real(events, "apps_from_locations_split")
    require_items(events, "app")
    if not has_places(events):
        raise DataError("recommending apps from locations needs places (location_id, "
                        "location_category or coordinates), and no event has one",
                        field="location_id")
    candidates = sorted(_allowed(events, users))
    if not candidates:
        raise DataError("none of the given users has an event", field="user_id")
    size = max(1, int(len(candidates) * holdout_fraction))
    held = set(np.random.default_rng(seed).choice(candidates, size=size, replace=False).tolist())
    hidden = events["user_id"].astype(str).isin(held)
    visible = validate_events(pd.concat([events[~hidden], location_only(events[hidden])],
                                        ignore_index=True), source="apps_from_locations_split")
    targets, target_rows = {}, {}
    for user, rows in events[hidden].groupby("user_id"):
        top = set(item_counts(rows, "app").index[:n_targets])
        if top:
            targets[str(user)] = top
            target_rows[str(user)] = rows[rows["app"].isin(list(top)).to_numpy()]
    if not targets:
        raise DataError("no held-out user uses an app", field="app")
    return _finish("apps-from-locations", "app", "app", visible, targets, target_rows,
                   f"{holdout_fraction:.0%} of users keep places only; targets = their "
                   f"{n_targets} most used apps (seed {seed})")


# ------------------------------------------------------------------------------ helpers

def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _user_rng(seed: int, user: str) -> np.random.Generator:
    """A generator for one user: the same hides for a user whoever else is evaluated."""
    return np.random.default_rng([seed, zlib.crc32(user.encode("utf-8"))])


def _prepare(events: pd.DataFrame, kind: str, where: str) -> str:
    """Refuse synthetic events; the item column of `kind` (raises naming it when empty)."""
    require_real(events, where)
    return require_items(events, kind, item_column(kind, events))


def _allowed(events: pd.DataFrame, users: Iterable[str] | None) -> set[str]:
    everyone = set(events["user_id"].astype(str).unique())
    return everyone if users is None else everyone & {str(u) for u in users}


def _item_values(rows: pd.DataFrame, column: str) -> pd.Series:
    return rows[column].astype("string")


def _most_common(values: pd.Series, weights: np.ndarray):
    counts = ranked_counts(values.astype("string").where(values.notna()), weights)
    return counts.index[0]


def _hide_items(events: pd.DataFrame, kind: str, column: str, users, seed: int, *,
                min_items: int, n_hidden, name: str, description: str) -> Split:
    """Hide `n_hidden(n)` random distinct items of each evaluated user with >= `min_items`."""
    events = events.reset_index(drop=True)
    allowed = _allowed(events, users)
    values = _item_values(events, column)
    drop = np.zeros(len(events), dtype=bool)
    targets, target_rows = {}, {}
    for user, rows in events[events["user_id"].astype(str).isin(allowed)].groupby("user_id"):
        user = str(user)
        items = sorted(used_items(rows, kind, column))
        if len(items) < min_items:
            continue
        chosen = _user_rng(seed, user).choice(len(items), size=n_hidden(len(items)),
                                              replace=False)
        hidden = {items[i] for i in chosen}
        mask = values.loc[rows.index].isin(hidden).fillna(False).to_numpy(dtype=bool)
        drop[rows.index[mask]] = True
        targets[user], target_rows[user] = hidden, rows[mask]
    if not targets:
        raise DataError(f"no evaluated user has {min_items}+ distinct {kind!r} items",
                        field=column)
    return _finish(name, kind, column, events[~drop], targets, target_rows, description)


def _finish(name: str, kind: str, column: str, visible: pd.DataFrame,
            targets: dict[str, set[str]], target_rows: dict[str, pd.DataFrame],
            description: str) -> Split:
    contexts = {user: query_context(target_rows[user], exclude=column) for user in targets}
    return Split(name, visible.reset_index(drop=True), targets, kind, contexts, description)
