"""Eq. 26's MAE over resampled users, without a new contingency table per resample.

A bootstrap of the fidelity MAE (eq. 26, Fig. 5b) draws test users with replacement and scores
the drawn users' real events against their generated ones. ``fidelity`` builds two crosstabs and
two Cramer's V per call, so a thousand draws cost minutes. Here each user's counts are tabulated
once on labels shared by every side, and a resample is a weighted sum of those tables (weights =
how often each user was drawn). The result equals ``fidelity(real, generated,
normalise="location").mae`` on the concatenated draw, with the same filters as ``contingency``:
events without a place are left out, and a pooled table with any app use keeps app uses only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uscope.data.schema import DataError
from uscope.synth.fidelity import AXES, agreement, hour_labels


@dataclass(frozen=True)
class SideCounts:
    """One side's per-user counts: (users, location categories, columns) of all placed events
    and of placed app uses, and which users have an app use at all (placed or not)."""

    placed: np.ndarray
    app_uses: np.ndarray
    has_app: np.ndarray

    def pooled(self, weights: np.ndarray, against: str, side: str) -> np.ndarray:
        """The contingency table of the weighted users (``contingency``'s filters)."""
        with_apps = bool((weights[self.has_app] > 0).any())
        if against == "app_category" and not with_apps:
            raise DataError("no drawn event has an app; eq. 26 needs app-location pairs",
                            source=side, field="app")
        counts = self.app_uses if with_apps else self.placed
        return np.tensordot(weights, counts, axes=1)


class UserTables:
    """Per-user contingency counts of several event tables ("sides": the real events and each
    generation) on shared labels; ``mae`` scores any weighting of the users."""

    def __init__(self, sides: dict[str, pd.DataFrame], against: str = "app_category",
                 hour_bin: int = 3):
        if against not in AXES:
            raise ValueError(f"against must be one of {AXES}, got {against!r}")
        self.against = against
        labelled = {name: self._labelled(events, hour_bin) for name, events in sides.items()}
        self.users = sorted({str(u) for events in sides.values() for u in events["user_id"]})
        rows = sorted({r for frame in labelled.values() for r in frame["row"]})
        columns = sorted({c for frame in labelled.values() for c in frame["column"]})
        shape = (len(self.users), len(rows), len(columns))
        codes = {"user": {u: i for i, u in enumerate(self.users)},
                 "row": {r: i for i, r in enumerate(rows)},
                 "column": {c: i for i, c in enumerate(columns)}}
        self.sides = {}
        for name, frame in labelled.items():
            users_with_apps = sides[name].loc[sides[name]["app"].notna(), "user_id"]
            has_app = np.isin(self.users, users_with_apps.astype(str).unique())
            index = tuple(frame[axis].map(codes[axis]).to_numpy(int) for axis in codes)
            placed, app_uses = np.zeros(shape), np.zeros(shape)
            np.add.at(placed, index, 1.0)
            app = frame["app"].to_numpy(bool)
            np.add.at(app_uses, tuple(axis[app] for axis in index), 1.0)
            self.sides[name] = SideCounts(placed, app_uses, has_app)

    def _labelled(self, events: pd.DataFrame, hour_bin: int) -> pd.DataFrame:
        """(user, row label, column label, has app) of each placed event with a column label."""
        placed = events[events["location_category"].notna()]
        column = placed["app_category"].astype(str) if self.against == "app_category" else \
            hour_labels(placed["timestamp"], hour_bin)
        frame = pd.DataFrame({"user": placed["user_id"].astype(str),
                              "row": placed["location_category"].astype(str),
                              "column": column, "app": placed["app"].notna()})
        return frame[frame["column"].notna()]  # crosstab leaves out a missing app category

    def weights(self, users) -> np.ndarray:
        """How often each of ``self.users`` occurs in ``users`` (a draw with replacement)."""
        position = {u: i for i, u in enumerate(self.users)}
        picked = [position[str(u)] for u in users if str(u) in position]
        return np.bincount(np.asarray(picked, int), minlength=len(self.users)).astype(float)

    def mae(self, real: str, generated: str, weights: np.ndarray) -> float:
        """``fidelity(...).mae`` (eq. 26, ``normalise="location"``) of the weighted users: rows
        are the location categories placed on both sides, columns those seen on either."""
        tables = [self.sides[name].pooled(weights, self.against, name)
                  for name in (real, generated)]
        rows = (tables[0].sum(axis=1) > 0) & (tables[1].sum(axis=1) > 0)
        if not rows.any():
            raise DataError("generated and real events share no location category",
                            field="location_category")
        columns = (tables[0].sum(axis=0) > 0) | (tables[1].sum(axis=0) > 0)
        real_dist, gen_dist = (t[rows][:, columns] / t[rows].sum(axis=1, keepdims=True)
                               for t in tables)
        return agreement(real_dist, gen_dist)["mae"]
