"""Evaluation splits of an event table, and the guard that keeps synthetic events out of them.

- ``cutoff_time`` / ``novelty_split``: split time at a cut-off; a user's history is what came
  before it, the targets are the items (``uscope.data.items``) the user first used after it
  (seed paper 000, RQ5). The recommendation harness (``uscope.recommend.evaluate``) scores on
  this split and the fine-tuning cases (``uscope.tuning.tasks``) take their ground truth from
  it, so both see the same targets.
- ``require_real``: Sec. 5.2, the augmented set H~_u is used only during training. Every split
  calls it and fails loudly on a ``synthetic=True`` row. The check reads only the event
  schema's ``synthetic`` column, so it lives in the data layer where every later stage can
  reach it; ``uscope.synth.guard`` re-exports it beside the writers of synthetic files.

Both time splits need event times: an untimed table (Frappe's context buckets) raises naming
the ``timestamp`` field. The items of "intent" are decided on the whole table
(``uscope.data.items.intent_column``), so every user's targets share one label space.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uscope.data.items import item_column, used_items
from uscope.data.schema import DataError, require_times


class SyntheticInEvaluation(DataError):
    """An evaluation split was handed synthetic events."""


def require_real(events: pd.DataFrame, where: str) -> None:
    """Raise ``SyntheticInEvaluation`` naming ``where``, the first synthetic row and the count."""
    if "synthetic" not in events.columns:
        return
    flags = events["synthetic"].fillna(False).to_numpy(dtype=bool)
    if flags.any():
        row = int(np.flatnonzero(flags)[0])
        raise SyntheticInEvaluation(
            f"{int(flags.sum())} of {len(flags)} rows are synthetic (synthetic=True); generated "
            "events augment training only and never enter an evaluation split - pass the real "
            "events alone", source=where, line=row, field="synthetic")


def cutoff_time(events: pd.DataFrame, cutoff: str | float) -> pd.Timestamp:
    """A timestamp, or a fraction of the events' time span (strictly between 0 and 1)."""
    require_times(events, "a time cut-off")
    if isinstance(cutoff, (int, float)):
        if not 0 < cutoff < 1:
            raise ValueError("a fractional cutoff must lie strictly between 0 and 1")
        start, end = events["timestamp"].min(), events["timestamp"].max()
        return start + (end - start) * float(cutoff)
    return pd.Timestamp(cutoff)


def novelty_split(events: pd.DataFrame, kind: str, cutoff: pd.Timestamp
                  ) -> tuple[pd.DataFrame, dict[str, set[str]]]:
    """History before `cutoff`, and per user the items first used after it (real events only)."""
    require_real(events, "novelty_split")
    require_times(events, "novelty_split")
    column = item_column(kind, events)
    history = events[events["timestamp"] < cutoff].reset_index(drop=True)
    future = events[events["timestamp"] >= cutoff]
    past = dict(iter(history.groupby("user_id")))  # user -> their history rows
    targets = {}
    for user, rows in future.groupby("user_id"):
        if user not in past:
            continue  # nothing before the cut-off: not a novelty case
        new = used_items(rows, kind, column) - used_items(past[user], kind, column)
        if new:
            targets[str(user)] = new
    return history, targets
