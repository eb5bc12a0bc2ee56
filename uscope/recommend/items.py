"""Items for recommendation: the item views of ``uscope.data.items`` (re-exported here, where
they used to live) and the context kernel that weights a user's events by hour and place."""

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
from uscope.data.schema import require_times

__all__ = ["CONTEXT_HOUR_SIGMA", "KIND_COLUMNS", "UsageMatrix", "context_weights",
           "intent_column", "item_column", "known_items", "used_items"]

CONTEXT_HOUR_SIGMA = 2.0  # hours: width of the time-of-day context kernel


def context_weights(events: pd.DataFrame, hour: float | None = None,
                    location: str | None = None, location_boost: float = 2.0) -> np.ndarray:
    """Weight of each event under a context: a Gaussian kernel on the circular hour-of-day
    distance to `hour`, times `location_boost` for events at the `location` category."""
    weights = np.ones(len(events))
    if hour is not None:
        require_times(events, "an hour context")
        hours = events["timestamp"].dt.hour.to_numpy() + events["timestamp"].dt.minute.to_numpy() / 60
        distance = np.abs(hours - hour)
        distance = np.minimum(distance, 24 - distance)
        weights *= np.exp(-0.5 * (distance / CONTEXT_HOUR_SIGMA) ** 2)
    if location is not None:
        at_place = events["location_category"].astype(str).to_numpy() == location
        weights *= np.where(at_place, location_boost, 1.0)
    return weights
