"""Items and who used them: the item views of an event table.

Every later stage that speaks of "items" (the novelty split of ``uscope.data.splits``, the
fine-tuning cases of ``uscope.tuning``, the strategies of ``uscope.recommend``) takes them
from here, so the stages agree on what an item is.

Three kinds of item (RQ5 of seed paper 000, Fig. 7: apps, locations, intents):

| kind       | event column        | meaning                                            |
|------------|---------------------|----------------------------------------------------|
| "app"      | `app`               | an app                                             |
| "location" | `location_category` | a named place category (POI cluster, eq. 15 label)  |
| "intent"   | `app_category`      | what the user wants to do (PITuning's intent = event category) |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from uscope.data.schema import UNKNOWN_CATEGORY, DataError

KIND_COLUMNS = {"app": "app", "location": "location_category", "intent": "app_category"}


def item_column(kind: str) -> str:
    """The event column holding items of `kind`; unknown kinds raise naming the valid ones."""
    if kind not in KIND_COLUMNS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {sorted(KIND_COLUMNS)}")
    return KIND_COLUMNS[kind]


def known_items(events: pd.DataFrame, kind: str) -> pd.Series:
    """The non-null, known item values of `kind` in `events` (index kept); "Unknown" (a hidden
    or unmapped value) is not an item."""
    column = item_column(kind)
    values = events[column].dropna().astype(str)
    return values[values != UNKNOWN_CATEGORY]


def used_items(events: pd.DataFrame, kind: str) -> set[str]:
    return set(known_items(events, kind).unique())


@dataclass
class UsageMatrix:
    """users x items usage (weighted counts) for one kind, with the item and user orders."""

    users: list[str]
    items: list[str]
    counts: sparse.csr_matrix  # (n_users, n_items)

    @classmethod
    def build(cls, events: pd.DataFrame, kind: str, weights: np.ndarray | None = None,
              users: list[str] | None = None, items: list[str] | None = None) -> UsageMatrix:
        """Weighted counts; `users`/`items` fix the row/column order (others are left out)."""
        values = known_items(events, kind)
        if values.empty and items is None:
            raise DataError(f"the events hold no {kind!r} items (column "
                            f"{item_column(kind)!r} is empty)", field=item_column(kind))
        rows = events.loc[values.index]
        users = users or sorted(rows["user_id"].astype(str).unique().tolist())
        items = items or sorted(values.unique().tolist())
        user_codes = pd.Categorical(rows["user_id"].astype(str), categories=users).codes
        item_codes = pd.Categorical(values, categories=items).codes
        w = np.ones(len(rows)) if weights is None else np.asarray(weights)[
            events.index.get_indexer(values.index)]
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
