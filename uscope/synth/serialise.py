"""App-location sequences as text, for the sequence LM of eq. 25 (training and generation).

One event is one line ``"<Wkd> <HH>h | <pair>"`` (e.g. ``"Tue 08h | News/22 @ Residence/3"``,
or ``"Tue 08h | - @ Food/v12"`` for a place check-in without an app; the header names both parts
whichever is absent):
tau_t as weekday and hour, then (a_t, l_t). A prompt is the profile P_u, a header, the latest
lines of the sequence so far, and the time of the next event up to ``"|"``; the model (or the
constraint) completes the line with ``" <pair>\\n"``. ``format_sequence``/``parse_sequence`` are
exact inverses on well-formed text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from uscope.synth.pairs import Pair, pairs_of

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
HEADER = "Events (weekday hour | app category/app @ place category/place):\n"
_LINE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (\d{2})h \| (.+)$")


@dataclass(frozen=True)
class TimedPair:
    """tau_t (weekday 0 = Monday, hour) and (a_t, l_t)."""

    weekday: int
    hour: int
    pair: Pair

    def __post_init__(self) -> None:
        if not (0 <= self.weekday < 7 and 0 <= self.hour < 24):
            raise ValueError(f"weekday {self.weekday} / hour {self.hour} out of range")


def time_label(weekday: int, hour: int) -> str:
    return f"{WEEKDAYS[weekday]} {hour:02d}h"


def time_label_of(stamp: pd.Timestamp) -> str:
    return time_label(int(stamp.dayofweek), int(stamp.hour))


def format_line(event: TimedPair) -> str:
    return f"{time_label(event.weekday, event.hour)} | {event.pair.text()}\n"


def format_sequence(events: Sequence[TimedPair]) -> str:
    return "".join(format_line(e) for e in events)


def parse_line(line: str) -> TimedPair:
    """One line back to (tau, pair); raises ValueError naming what is wrong."""
    match = _LINE.match(line.rstrip("\n"))
    if match is None:
        raise ValueError(f"not a '<Wkd> <HH>h | <pair>' line: {line!r}")
    weekday, hour, pair = match.groups()
    return TimedPair(WEEKDAYS.index(weekday), int(hour), Pair.parse(pair))


def parse_sequence(text: str) -> list[TimedPair]:
    """Every non-empty line of ``text`` as a ``TimedPair`` (ValueError with the line number)."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(parse_line(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from exc
    return out


def timed_pairs(history: pd.DataFrame) -> list[TimedPair]:
    """The rows of a (time-sorted) event table as ``TimedPair`` values."""
    stamps = pd.to_datetime(history["timestamp"])
    return [TimedPair(int(s.dayofweek), int(s.hour), p)
            for s, p in zip(stamps, pairs_of(history))]


def prompt_header(profile: str | None) -> str:
    """P_u of eq. 25 as the conditioning text."""
    text = (profile or "").strip() or "(no profile)"
    return f"Profile: {' '.join(text.split())}\n{HEADER}"


def generation_prompt(profile: str | None, context: Sequence[TimedPair], weekday: int,
                      hour: int) -> str:
    """The prompt for the next event at (weekday, hour): header, context lines, time, ``"|"``."""
    return prompt_header(profile) + format_sequence(context) + f"{time_label(weekday, hour)} |"


def completion_text(pair: Pair) -> str:
    """What follows the prompt's ``"|"`` for ``pair`` (the string the constraint admits)."""
    return f" {pair.text()}\n"
