"""Eq. 26's MAE over resampled users, without a new contingency table per resample.

A bootstrap of the fidelity MAE (eq. 26, Fig. 5b) draws test users with replacement and scores
the drawn users' real events against their generated ones. ``fidelity`` builds two crosstabs and
two Cramer's V per call, so a thousand draws cost minutes. Here each user's counts are tabulated
once on labels shared by every side, and a resample is a weighted sum of those tables (weights =
how often each user was drawn). The result equals ``fidelity(real, generated,
normalise="location").mae`` on the concatenated draw, with the same filters and errors as
``contingency``: events without a place are left out, a pooled table with any app use keeps app
uses only, and the hour axis refuses a drawn event without a time. User ids compare as text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uscope.data.schema import DataError
from uscope.synth.fidelity import AXES, agreement, hour_labels


@dataclass(frozen=True)
class EventCounts:
    """Per-user counts of one set of events: (users, location categories, columns), and how
    many of each user's events have no time (they have no hour label)."""

    table: np.ndarray
    untimed: np.ndarray


@dataclass(frozen=True)
class SideCounts:
    """One side's placed events and placed app uses, and which users have an app use at all
    (placed or not)."""

    placed: EventCounts
    app_uses: EventCounts
    has_app: np.ndarray

    def pooled(self, weights: np.ndarray, against: str, side: str) -> np.ndarray:
        """The contingency table of the weighted users (``contingency``'s filters)."""
        drawn = weights > 0
        with_apps = bool(drawn[self.has_app].any())
        if against == "app_category" and not with_apps:
            raise DataError("no drawn event has an app; eq. 26 needs app-location pairs",
                            source=side, field="app")
        counts = self.app_uses if with_apps else self.placed
        if counts.untimed[drawn].any():
            raise DataError("the hour axis needs event times, and some events have none",
                            source=side, field="timestamp")
        return np.tensordot(weights, counts.table, axes=1)


def _user_ids(events: pd.DataFrame, side: str) -> pd.Series:
    if events["user_id"].isna().any():
        raise DataError("an event has no user_id", source=side, field="user_id")
    return events["user_id"].astype(str)


class UserTables:
    """Per-user contingency counts of several event tables ("sides": the real events and each
    generation) on shared labels; ``mae`` scores any weighting of the users."""

    def __init__(self, sides: dict[str, pd.DataFrame], against: str = "app_category",
                 hour_bin: int = 3):
        if against not in AXES:
            raise ValueError(f"against must be one of {AXES}, got {against!r}")
        self.against = against
        ids = {name: _user_ids(events, name) for name, events in sides.items()}
        labelled = {name: self._labelled(events.assign(user_id=ids[name]), hour_bin)
                    for name, events in sides.items()}
        self.users = sorted(set().union(*(side_ids.unique() for side_ids in ids.values())))
        self.position = {u: i for i, u in enumerate(self.users)}
        rows = sorted(set().union(*(frame["row"].unique() for frame in labelled.values())))
        columns = sorted(set().union(*(frame["column"].dropna().unique()
                                       for frame in labelled.values())))
        codes = {"row": {r: i for i, r in enumerate(rows)},
                 "column": {c: i for i, c in enumerate(columns)}}
        self.sides = {}
        for name, frame in labelled.items():
            app = frame["app"].to_numpy(bool)
            with_apps = ids[name][sides[name]["app"].notna()].unique()
            self.sides[name] = SideCounts(
                self._counts(frame, codes, np.ones(len(frame), bool)),
                self._counts(frame, codes, app),
                np.isin(self.users, with_apps))

    def _labelled(self, events: pd.DataFrame, hour_bin: int) -> pd.DataFrame:
        """(user, row label, column label or missing, app use?) of each placed event."""
        placed = events[events["location_category"].notna()]
        if self.against == "app_category":
            column = placed["app_category"].astype(str)
        else:
            timed = placed["timestamp"].notna()
            column = pd.Series(pd.NA, index=placed.index, dtype=object)
            column[timed] = hour_labels(placed.loc[timed, "timestamp"], hour_bin)
        return pd.DataFrame({"user": placed["user_id"],
                             "row": placed["location_category"].astype(str),
                             "column": column, "app": placed["app"].notna(),
                             "untimed": column.isna() & (self.against == "hour")})

    def _counts(self, frame: pd.DataFrame, codes: dict, keep: np.ndarray) -> EventCounts:
        """Counts of the ``keep`` events; a missing app category is left out (pandas 3 keeps it
        missing after ``astype(str)`` and crosstab drops it; pandas 2 makes it the text "nan"
        on both paths), an untimed event is counted apart."""
        frame = frame[keep]
        users = frame["user"].map(self.position).to_numpy(int)
        untimed = np.bincount(users[frame["untimed"].to_numpy(bool)],
                              minlength=len(self.users))
        labelled = frame["column"].notna().to_numpy()
        table = np.zeros((len(self.users), len(codes["row"]), len(codes["column"])))
        np.add.at(table, (users[labelled],
                          frame["row"][labelled].map(codes["row"]).to_numpy(int),
                          frame["column"][labelled].map(codes["column"]).to_numpy(int)), 1.0)
        return EventCounts(table, untimed)

    def weights(self, users) -> np.ndarray:
        """How often each of ``self.users`` occurs in ``users`` (a draw with replacement)."""
        unknown = [u for u in users if str(u) not in self.position]
        if unknown:
            raise ValueError(f"user {unknown[0]!r} has no events on any side")
        picked = np.asarray([self.position[str(u)] for u in users], int)
        return np.bincount(picked, minlength=len(self.users)).astype(float)

    def mae(self, real: str, generated: str, weights: np.ndarray) -> float:
        """``fidelity(...).mae`` (eq. 26, ``normalise="location"``) of the weighted users: rows
        are the location categories placed on both sides, columns those seen on either. A
        single shared cell raises ValueError, as ``agreement`` does."""
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
