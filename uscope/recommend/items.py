"""Items for recommendation: the item views of ``uscope.data.items`` (re-exported here, where
they used to live) and the context kernel that weights events by how close their situation is
to a query's (hour, weekday, place category, and the buckets of the ``context`` column)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uscope.data.items import (
    KIND_COLUMNS,
    UsageMatrix,
    intent_column,
    item_column,
    known_items,
    used_items,
)
from uscope.data.schema import has_times, parse_context

__all__ = ["CONTEXT_HOUR_SIGMA", "CONTEXT_MISMATCH", "KIND_COLUMNS", "ContextTable",
           "UsageMatrix", "check_context", "intent_column", "item_column", "known_items",
           "used_items"]

CONTEXT_HOUR_SIGMA = 2.0  # hours: width of the time-of-day context kernel
CONTEXT_MISMATCH = 0.25  # weight of an event whose categorical context differs from the query's
TIME_KEYS = ("hour", "weekday")  # derived from timestamps


def check_context(context: dict | None, keys: list[str]) -> dict:
    """`context` (None values dropped) with its keys checked against the `keys` the events
    record (``ContextTable.keys``); raises naming the unknown keys and the ones available."""
    context = {key: value for key, value in (context or {}).items() if value is not None}
    unknown = sorted(set(context) - set(keys))
    if unknown:
        raise ValueError(f"unknown context keys {unknown}; these events record "
                         f"{keys or 'no context'}")
    if "hour" in context and not 0 <= float(context["hour"]) <= 24:
        raise ValueError(f"context hour must lie in [0, 24], got {context['hour']}")
    return context


class ContextTable:
    """The context of every event of a table, read once, to weight the events under many
    query contexts (``weights``)."""

    def __init__(self, events: pd.DataFrame):
        self.events = events
        self._values: dict[str, np.ndarray] = {}
        self._seen: dict[str, set[str]] = {}
        has_context = "context" in events.columns and events["context"].notna().any()
        self._parsed = parse_context(events["context"]) if has_context else None
        self.keys = self._keys()

    def _keys(self) -> list[str]:
        """The context keys these events can answer: ``hour`` and ``weekday`` when timed,
        ``location`` (the current place category) when any event has one, and every key of
        the ``context`` column (Frappe: daytime, weekday, homework, weather, ...)."""
        keys = list(TIME_KEYS) if has_times(self.events) else []
        if self.events["location_category"].notna().any():
            keys.append("location")
        if self._parsed is not None:
            keys += [k for k in self._parsed.columns if k not in keys]
        return keys

    def values(self, key: str) -> np.ndarray:
        """Each event's value of `key`: hours as floats, categorical keys as lower-case text."""
        if key not in self._values:
            events = self.events
            if key == "hour":
                stamps = events["timestamp"]
                values = (stamps.dt.hour.to_numpy() + stamps.dt.minute.to_numpy() / 60)
            else:
                if key == "location":
                    column = events["location_category"]
                elif key == "weekday" and has_times(events):
                    column = events["timestamp"].dt.day_name()
                else:
                    column = self._parsed[key]
                values = column.astype("string").str.lower().fillna("").to_numpy()
            self._values[key] = values
        return self._values[key]

    def check(self, context: dict | None) -> dict:
        """``check_context`` against the keys these events record; a categorical value no
        event has (a typo: "Mon" for "monday") raises naming the values seen."""
        context = check_context(context, self.keys)
        for key, value in context.items():
            if key != "hour":
                seen = self._seen.get(key)
                if seen is None:
                    seen = self._seen[key] = set(self.values(key).tolist()) - {""}
                if str(value).lower() not in seen:
                    raise ValueError(f"context {key}={value!r} is never seen in these events; "
                                     f"seen: {sorted(seen)[:12]}")
        return context

    def weights(self, context: dict | None, mismatch: float = CONTEXT_MISMATCH) -> np.ndarray:
        """Weight of each event under a query context (eq. C1):
            w(e) = exp(-d_24(hour_e, hour)^2 / (2 sigma^2)) * prod_k m^(1[e_k != c_k]),
        a Gaussian kernel on the circular hour-of-day distance and, per categorical key
        (weekday, location, the keys of the ``context`` column), a factor m = `mismatch` for
        events seen in another situation. An empty context weights every event 1."""
        weights = np.ones(len(self.events))
        for key, value in self.check(context).items():
            if key == "hour":
                distance = np.abs(self.values("hour") - float(value))
                distance = np.minimum(distance, 24 - distance)
                weights *= np.exp(-0.5 * (distance / CONTEXT_HOUR_SIGMA) ** 2)
            else:
                weights *= np.where(self.values(key) == str(value).lower(), 1.0, mismatch)
        return weights
