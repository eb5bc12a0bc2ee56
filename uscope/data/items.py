"""Items and who used them: the item views of an event table.

Every later stage that speaks of "items" (the novelty split of ``uscope.data.splits``, the
fine-tuning cases of ``uscope.tuning``, the strategies of ``uscope.recommend``) takes them
from here, so the stages agree on what an item is.

Four kinds of item (RQ5 of seed paper 000, Fig. 7: apps, locations, intents; plus the places
themselves):

| kind       | event column        | meaning                                            |
|------------|---------------------|----------------------------------------------------|
| "app"      | `app`               | an app                                             |
| "place"    | `location_id`       | a venue, base station or GPS place                 |
| "location" | `location_category` | a named place category (POI cluster, eq. 15 label)  |
| "intent"   | see ``intent_column`` | what the user wants to do (PITuning's intent = event category) |

The intent rule (``intent_column``): the app category when the events have apps (PITuning's
"Honor" setting), else the place category ("Mobile" setting: event = place, intent = place
category). It is decided on the whole table, never per user, so every user's intents share one
label space; a stage that looks at one user's rows passes the column decided on the population.
An event without an app is never an app item: nothing here invents one.

Counts respect ``uses`` (one row may stand for several uses; null = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from uscope.data.schema import UNKNOWN_CATEGORY, DataError, has_apps, use_counts

KIND_COLUMNS = {"app": "app", "place": "location_id", "location": "location_category",
                "intent": "app_category"}  # "intent" as for data with apps (intent_column)


def intent_column(events: pd.DataFrame) -> str:
    """The column holding intents: ``app_category`` when any event is an app use, else
    ``location_category`` (PITuning's Mobile setting)."""
    return "app_category" if has_apps(events) else "location_category"


def item_column(kind: str, events: pd.DataFrame | None = None) -> str:
    """The event column holding items of `kind` (for "intent", decided on `events` by
    ``intent_column``); unknown kinds raise naming the valid ones."""
    if kind not in KIND_COLUMNS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {sorted(KIND_COLUMNS)}")
    if kind == "intent" and events is not None:
        return intent_column(events)
    return KIND_COLUMNS[kind]


def require_items(events: pd.DataFrame, kind: str, column: str | None = None) -> str:
    """The column of `kind` in `events`; raises naming the field when no event has one."""
    column = column or item_column(kind, events)
    if not events[column].notna().any():
        hint = (" (the events are place observations only, with no app use: ask for kind "
                "'place', 'location' or 'intent')" if column.startswith("app") else "")
        raise DataError(f"the events hold no {kind!r} items: kind {kind!r} needs {column!r}, "
                        f"and no event has one{hint}", field=column)
    return column


def known_items(events: pd.DataFrame, kind: str, column: str | None = None) -> pd.Series:
    """The non-null, known item values of `kind` in `events` (index kept); "Unknown" (a hidden
    or unmapped value) is not an item. `column` overrides the column of `kind` (pass the one
    decided on the population when `events` is one user's rows)."""
    column = column or item_column(kind, events)
    values = events[column].dropna().astype(str)
    return values[values != UNKNOWN_CATEGORY]


def used_items(events: pd.DataFrame, kind: str, column: str | None = None) -> set[str]:
    return set(known_items(events, kind, column).unique())


def ranked_counts(values: pd.Series, weights: np.ndarray) -> pd.Series:
    """Weighted counts of the non-null values, most first (ties by name)."""
    known = values.notna().to_numpy()
    counts = pd.Series(np.asarray(weights, dtype=np.float64)[known],
                       index=values[known].astype(str).to_numpy()).groupby(level=0).sum()
    return counts.loc[sorted(counts.index, key=lambda v: (-counts[v], v))]


def item_counts(events: pd.DataFrame, kind: str, column: str | None = None) -> pd.Series:
    """Uses of each known item of `kind` (``uses``-weighted), most used first (ties by name)."""
    values = known_items(events, kind, column)
    return ranked_counts(values, use_counts(events.loc[values.index]))


@dataclass
class UsageMatrix:
    """users x items usage (weighted counts) for one kind, with the item and user orders."""

    users: list[str]
    items: list[str]
    counts: sparse.csr_matrix  # (n_users, n_items)

    @classmethod
    def build(cls, events: pd.DataFrame, kind: str, weights: np.ndarray | None = None,
              users: list[str] | None = None, items: list[str] | None = None,
              column: str | None = None) -> UsageMatrix:
        """Use counts (``uses`` times `weights`, e.g. context weights); `users`/`items` fix the
        row/column order (others are left out)."""
        column = column or item_column(kind, events)
        if items is None:
            require_items(events, kind, column)
        values = known_items(events, kind, column)
        if values.empty and items is None:
            raise DataError(f"the events hold no known {kind!r} items (column {column!r} "
                            f"holds only {UNKNOWN_CATEGORY!r})", field=column)
        rows = events.loc[values.index]
        users = users or sorted(rows["user_id"].astype(str).unique().tolist())
        items = items or sorted(values.unique().tolist())
        user_codes = pd.Categorical(rows["user_id"].astype(str), categories=users).codes
        item_codes = pd.Categorical(values, categories=items).codes
        w = use_counts(rows)
        if weights is not None:
            w = w * np.asarray(weights)[events.index.get_indexer(values.index)]
        keep = (user_codes >= 0) & (item_codes >= 0)
        counts = sparse.csr_matrix((w[keep], (user_codes[keep], item_codes[keep])),
                                   shape=(len(users), len(items)))
        return cls(users, items, counts)

    def shares(self) -> sparse.csr_matrix:
        """Each user's usage as a distribution over items (rows sum to 1, empty rows stay 0)."""
        totals = np.asarray(self.counts.sum(axis=1)).ravel()
        inverse = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
        return sparse.diags(inverse) @ self.counts

    def popularity(self) -> np.ndarray:
        """Share of users who used each item (distinct users, not uses)."""
        return np.asarray((self.counts > 0).sum(axis=0)).ravel() / max(len(self.users), 1)
