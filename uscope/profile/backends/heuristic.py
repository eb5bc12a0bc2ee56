"""A deterministic profile writer from the features alone (no model).

It is the fallback when no LLM is available and the "heuristic baseline" whose profiles serve
as dispreferred responses y_l for DPO (eq. 27). It states the facts of x_u in fixed sentences:
main app categories, main apps, places and what is used there, daily rhythm and regularity.
A location-only user (no app use: check-ins, GPS fixes) gets a profile of their historical
locations alone (the cold-start input of Sec. 7.1.2): the place categories they visit, their
most visited places, rhythm and regularity, and no sentence about apps. An untimed history
(Frappe) gets no rhythm or regularity sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

from uscope.profile.backends.base import Generation, ProfileRequest
from uscope.profile.faithfulness import daypart_shares, weekend_share
from uscope.profile.features import UserFeatures

_PHRASES = {"night": "at night", "morning": "in the morning", "afternoon": "in the afternoon",
            "evening": "in the evening"}


def join_list(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _daypart(f: UserFeatures) -> str:
    return _PHRASES[daypart_shares(f)[0][0]]


def _app_sentences(f: UserFeatures) -> list[str]:
    """What the user does with apps, and where (rows of C_u)."""
    if f.top_categories:
        cats = join_list([f"{c} ({round(100 * s)}%)" for c, s in f.top_categories[:3]])
        sentence = f"This user mainly uses {cats} apps"
    else:
        sentence = "This user only uses apps of unknown category"
    sentences = [sentence + f", most often {join_list([a for a, _ in f.top_apps[:3]])}."]
    if f.top_places:
        parts = []
        for place, share in f.top_places[:2]:
            where = f"at {place} ({round(100 * share)}%"
            if place in f.locations:  # a place seen only without app use has no row of C_u
                row = f.C_u[f.locations.index(place)]  # (A,) counts at this place
                where += f", mostly {f.app_categories[int(row.argmax())]}"
            parts.append(where + ")")
        sentences.append(f"They are seen {join_list(parts)}.")
    return sentences


def _place_sentences(f: UserFeatures) -> list[str]:
    """A location-only user: the place categories they visit and their most visited places."""
    sentences = []
    if f.top_place_categories:
        cats = join_list([f"{c} ({round(100 * s)}%)" for c, s in f.top_place_categories[:3]])
        sentences.append(f"This user mostly visits {cats} places.")
    ranked = f.top_venues or [(p, s, None) for p, s in f.top_places]
    if ranked:
        parts = [f"{place} ({category + ', ' if category else ''}{round(100 * share)}%)"
                 for place, share, category in ranked[:3]]
        sentences.append(f"Their most visited places are {join_list(parts)}.")
    coordinates = f"This user was seen {f.n_visits} times at places known only by coordinates."
    return sentences or [coordinates]


def heuristic_profile(f: UserFeatures) -> str:
    """The heuristic profile text of one user (same features -> same text)."""
    if f.n_used == 0:
        return "No app use was observed for this user (cold start), so the profile is unknown."
    sentences = _app_sentences(f) if f.uses_apps else _place_sentences(f)
    noun = "use" if f.uses_apps else "visits"
    if f.timed:
        peak = f.peak_hours(1)
        weekend = weekend_share(f)
        rhythm = f"Activity peaks {_daypart(f)}, busiest around {peak[0]:02d}:00"
        if weekend > 0:
            rhythm += f", with {round(100 * weekend)}% of {noun} on weekends"
        sentences.append(rhythm + ".")
        s = f.sigma
        regular = f"They average {s.sessions_per_day:.1f} sessions per active day"
        if s.routine_consistency is not None:
            word = "a regular" if s.routine_consistency > 0.7 else "a varied" \
                if s.routine_consistency < 0.4 else "a fairly regular"
            regular += f" and follow {word} daily routine"
        sentences.append(regular + ".")
    if f.cold_start:
        single = "use" if f.uses_apps else "visit"
        sentences.append(f"With a single observed {single}, this profile is tentative "
                         "(cold start).")
    return " ".join(sentences)


class HeuristicBackend:
    """Backend interface around ``heuristic_profile``."""

    name = "heuristic"
    model = "heuristic-v1"

    def generate(self, requests: Sequence[ProfileRequest]) -> list[Generation]:
        return [Generation(heuristic_profile(r.features)) for r in requests]
