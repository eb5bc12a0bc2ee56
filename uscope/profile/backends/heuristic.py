"""A deterministic profile writer from the features alone (no model).

It is the fallback when no LLM is available and the "heuristic baseline" whose profiles serve
as dispreferred responses y_l for DPO (eq. 27). It states the facts of x_u in fixed sentences:
main app categories, main apps, places and what is used there, daily rhythm and regularity.
"""

from __future__ import annotations

from collections.abc import Sequence

from uscope.profile.backends.base import Generation, ProfileRequest
from uscope.profile.features import UserFeatures

_DAYPARTS = ((0, 6, "at night"), (6, 12, "in the morning"), (12, 18, "in the afternoon"),
             (18, 24, "in the evening"))


def _list(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _daypart(f: UserFeatures) -> str:
    by_hour = f.pi_time.sum(axis=0)  # (24,)
    shares = [(float(by_hour[a:b].sum()), name) for a, b, name in _DAYPARTS]
    return max(shares, key=lambda s: s[0])[1]


def heuristic_profile(f: UserFeatures) -> str:
    """The heuristic profile text of one user (same features -> same text)."""
    if f.n_used == 0:
        return "No app use was observed for this user (cold start), so the profile is unknown."
    sentences = []
    if f.top_categories:
        cats = _list([f"{c} ({round(100 * s)}%)" for c, s in f.top_categories[:3]])
        sentences.append(f"This user mainly uses {cats} apps")
    else:
        sentences.append("This user only uses apps of unknown category")
    apps = _list([a for a, _ in f.top_apps[:3]])
    sentences[-1] += f", most often {apps}."
    if f.top_places:
        parts = []
        for place, share in f.top_places[:2]:
            row = f.C_u[f.locations.index(place)]  # (A,) counts at this place
            main = f.app_categories[int(row.argmax())]
            parts.append(f"at {place} ({round(100 * share)}%, mostly {main})")
        sentences.append(f"They are seen {_list(parts)}.")
    peak = f.peak_hours(1)
    weekend = float(f.pi_time[5:].sum())
    rhythm = f"Activity peaks {_daypart(f)}, busiest around {peak[0]:02d}:00"
    if weekend > 0:
        rhythm += f", with {round(100 * weekend)}% of use on weekends"
    sentences.append(rhythm + ".")
    s = f.sigma
    regular = f"They average {s.sessions_per_day:.1f} sessions per active day"
    if s.routine_consistency is not None:
        word = "a regular" if s.routine_consistency > 0.7 else "a varied" \
            if s.routine_consistency < 0.4 else "a fairly regular"
        regular += f" and follow {word} daily routine"
    sentences.append(regular + ".")
    if f.cold_start:
        sentences.append("With a single observed use, this profile is tentative (cold start).")
    return " ".join(sentences)


class HeuristicBackend:
    """Backend interface around ``heuristic_profile``."""

    name = "heuristic"
    model = "heuristic-v1"

    def generate(self, requests: Sequence[ProfileRequest]) -> list[Generation]:
        return [Generation(heuristic_profile(r.features)) for r in requests]
