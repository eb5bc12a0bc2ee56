"""(app, location) pairs of H_u (eq. 21) and the sets the synthesis constraint is built from.

Seed paper 000, Sec. 5.2: during generation, app-location pairs with zero empirical
co-occurrence in H_u are disallowed unless the profile implies exploratory intent. So:
- ``allowed_pairs(history)``: the pairs with non-zero co-occurrence in the user's real events;
- ``population_pairs(events)`` + ``exploration_candidates(...)``: pairs that other users really
  produced, outside the user's allowed set, which an exploratory user may try within a budget.

A pair is written as one line of text, ``"<app category>/<app> @ <place category>/<place>"``
(``"@ -"`` when no place is recorded, ``"- @"`` when no app is: a source of place check-ins
only, such as Foursquare, synthesises (place) at a time, the "place category x hour" pairs of
eq. 26), so the language model sees the categories' words before the ids.
``check_serialisable`` rejects values that would make that text ambiguous.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

import numpy as np
import pandas as pd

from uscope.data.schema import DataError, app_events, has_apps, validate_events
from uscope.data.splits import require_real
from uscope.profile.features import user_slices

SEPARATOR = " @ "
ABSENT = "-"  # no place, or no app
# characters that would break the line format (time | pair) or the pair format
_FORBIDDEN_ANYWHERE = ("\n", "\r", "|", "@")
_FORBIDDEN_IN_ID = ("/",)


@total_ordering
@dataclass(frozen=True)
class Pair:
    """One (a_t, l_t) of eq. 21 with the categories the fidelity of eq. 26 is measured on.
    The app is None for a place check-in (no app recorded), the place None for an app use
    without a place; never both."""

    app_category: str | None
    app: str | None
    location_category: str | None
    location_id: str | None

    def __post_init__(self) -> None:
        if self.app is None and self.location_id is None:
            raise ValueError("a pair needs an app or a place")
        for name, category in ((self.app, self.app_category),
                               (self.location_id, self.location_category)):
            if (name is None) != (category is None):
                raise ValueError(f"an app or place and its category come together: {self!r}")

    def __lt__(self, other: object) -> bool:
        """Pairs sort by their text (an app use without a place, or a check-in without an
        app, sorts beside the others); equal pairs have equal texts and back."""
        if not isinstance(other, Pair):
            return NotImplemented
        return self.text() < other.text()

    def text(self) -> str:
        return (f"{_join_named(self.app_category, self.app)}{SEPARATOR}"
                f"{_join_named(self.location_category, self.location_id)}")

    @classmethod
    def parse(cls, text: str) -> Pair:
        """Inverse of ``text``; raises ValueError on text that is not a pair."""
        app_part, sep, place_part = text.strip().partition(SEPARATOR)
        if not sep:
            raise ValueError(f"not an 'app @ place' pair: {text!r}")
        app_category, app = _split_named(app_part, "app", text)
        location_category, location_id = _split_named(place_part, "place", text)
        if app is None and location_id is None:
            raise ValueError(f"pair {text!r} has neither an app nor a place")
        return cls(app_category, app, location_category, location_id)


def _join_named(category: str | None, name: str | None) -> str:
    """(category, id) -> ``"<category>/<id>"``; (None, None) -> ``"-"``."""
    return ABSENT if name is None else f"{category}/{name}"


def _split_named(part: str, what: str, text: str) -> tuple[str | None, str | None]:
    """``"<category>/<id>"`` -> (category, id); ``"-"`` -> (None, None)."""
    if part == ABSENT:
        return None, None
    if "/" not in part:
        raise ValueError(f"{what} {part!r} is not '<category>/<id>' or {ABSENT!r} in {text!r}")
    category, name = part.rsplit("/", 1)
    if not (category and name):
        raise ValueError(f"empty field in pair {text!r}")
    return category, name


def synthesis_input(events: pd.DataFrame, source: str, purpose: str
                    ) -> tuple[pd.DataFrame, dict[str, slice]]:
    """Validated, real (``require_real``), pair-serialisable events and each user's row range:
    the common entry check of synthesis and of its LM's training data.

    With app uses in the table, the app events are kept (a place observation without an app
    makes no (app, place) pair; no app is ever invented). A table of place check-ins only keeps
    the events with a place id: it synthesises places, with ``"-"`` for the app."""
    events = validate_events(events, source=source)
    require_real(events, f"{source} ({purpose})")
    if has_apps(events):
        events = app_events(events)
    elif events["location_id"].notna().any():
        events = events[events["location_id"].notna()]
    else:
        raise DataError(f"{purpose} writes (app, place) pairs, and no event has an app or a "
                        "place id", source=source, field="app")
    events = events.reset_index(drop=True)
    check_serialisable(events, source)
    return events, user_slices(events)


def check_serialisable(events: pd.DataFrame, source: str = "<events>") -> None:
    """Raise ``DataError`` (row and field) for a value the pair text cannot carry unambiguously."""
    for column in ("app", "app_category", "location_id", "location_category"):
        values = events[column].astype("string")
        bad = np.zeros(len(values), dtype=bool)
        forbidden = _FORBIDDEN_ANYWHERE + (_FORBIDDEN_IN_ID if column in ("app", "location_id")
                                           else ())
        for token in forbidden:
            bad |= values.str.contains(token, regex=False).fillna(False).to_numpy(dtype=bool)
        bad |= values.ne(values.str.strip()).fillna(False).to_numpy(dtype=bool)  # parse strips
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"value {values.iloc[row]!r} contains one of {list(forbidden)} or "
                            "space at an end, which the synthesis text format reserves",
                            source=source, line=row,
                            field=column)
    for name, category in (("app", "app_category"), ("location_id", "location_category")):
        named = events[name].notna().to_numpy() & events[category].isna().to_numpy()
        if named.any():
            raise DataError(f"an event with a {name} needs its {category} for synthesis",
                            source=source, line=int(np.flatnonzero(named)[0]), field=category)


def _cell(value) -> str | None:
    return None if pd.isna(value) else str(value)


def pairs_of(events: pd.DataFrame) -> list[Pair]:
    """The pair of every row, in row order."""
    columns = [events[c].to_numpy(dtype=object) for c in
               ("app_category", "app", "location_category", "location_id")]
    return [Pair(_cell(c) if _cell(a) is not None else None, _cell(a),
                 _cell(lc) if _cell(lid) is not None else None, _cell(lid))
            for c, a, lc, lid in zip(*columns)]


def pair_counts(events: pd.DataFrame) -> Counter[Pair]:
    """Co-occurrence counts of (app, place) in ``events`` (item-level C_u of eq. 21-22)."""
    return Counter(pairs_of(events))


def allowed_pairs(history: pd.DataFrame) -> frozenset[Pair]:
    """The pairs with non-zero empirical co-occurrence in H_u: always allowed (Sec. 5.2)."""
    return frozenset(pair_counts(history))


def population_pairs(events: pd.DataFrame) -> Counter[Pair]:
    """How often each pair occurs in the whole (real) population."""
    return pair_counts(events)


def exploration_candidates(allowed: Iterable[Pair], population: Counter[Pair],
                           limit: int) -> tuple[Pair, ...]:
    """Out-of-set pairs an exploratory user may try: the ``limit`` most frequent population
    pairs not in ``allowed`` (ties by the pair's text), so every candidate is a real pattern."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    own = set(allowed)
    outside = [(count, pair) for pair, count in population.items() if pair not in own]
    outside.sort(key=lambda cp: (-cp[0], cp[1].text()))
    return tuple(pair for _, pair in outside[:limit])
