"""Faithfulness of profiles y_u (eq. 23) to the history H_u, as a measured quantity.

Used by the benchmarks (``measure``) and by the DPO recipes (``consistency_score``,
``drop_contradicting``). Two views of one profile:

- consistency with H_u, the score of the preference triplets (Sec. 5.3):

    c(y | H_u) = R(y) - F(y),  in [-1, 1]
    R(y) = |E_u ∩ M(y)| / |E_u|    evidence recall: E_u = the user's top-3 intents (app
                                   categories; place categories for a location-only user) and
                                   main place (as in ``uscope.profile.quality.faithfulness``)
    F(y) = |M(y) \\ U_u| / |M(y)|   false mentions: M(y) = category and place names of the
                                   population named in y, U_u = those the user actually used

- claims the text makes, each checked against the features: a category or place name
  ("name", refuted when the user never used it), a daypart, weekday or weekend ("time",
  refuted when under ``min_share`` of the events fall in it, always for an untimed user) and a
  percentage ("number", refuted when no share the features state rounds to within 1 point of
  it). The check is conservative: negations ("never at night") are not special-cased, so a
  denial of something absent counts as a claim of it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from uscope.data.schema import UNKNOWN_CATEGORY
from uscope.profile.features import NO_LOCATION, UserFeatures

KINDS = ("name", "time", "number")
MIN_SHARE = 0.05  # a time claim needs this share of the user's events
ALL_HOURS = tuple(range(24))
ALL_DAYS = tuple(range(7))
DAYPARTS = {"night": tuple(range(6)), "morning": tuple(range(6, 12)),
            "afternoon": tuple(range(12, 18)), "evening": tuple(range(18, 24))}
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# (pattern, what it claims, days, hours): the cells of pi_time the claim is about
_TIMES = [
    (r"\bmornings?\b", "morning", ALL_DAYS, DAYPARTS["morning"]),
    (r"\bafternoons?\b", "afternoon", ALL_DAYS, DAYPARTS["afternoon"]),
    (r"\bevenings?\b", "evening", ALL_DAYS, DAYPARTS["evening"]),
    (r"\b(?:late[- ])?night(?:time)?s?\b|\bovernight\b", "night", ALL_DAYS, DAYPARTS["night"]),
    (r"\bweekends?\b", "weekend", (5, 6), ALL_HOURS),
    (r"\bweekdays?\b", "weekdays", (0, 1, 2, 3, 4), ALL_HOURS),
    *[(rf"\b{d}s?\b", d.capitalize(), (i,), ALL_HOURS) for i, d in enumerate(DAY_NAMES)],
]
_TIMES = [(re.compile(p), label, days, hours) for p, label, days, hours in _TIMES]
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:%|percent\b|per cent\b)")
_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")


def _normal(text: str | None) -> str:
    """Case-folded, "_" as a space, single spaces; anything but a string (a failed profile's
    None or NaN) is the empty text."""
    if not isinstance(text, str):
        return ""
    return " ".join(text.casefold().replace("_", " ").split())


@lru_cache(maxsize=65536)
def _name_pattern(name: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(_normal(name))}(?!\w)")


def _find(normal: str, names: Iterable[str]) -> tuple[set[str], str]:
    """The names in an already normalised text, and the text with them blanked out."""
    found = set()
    for name in sorted(set(names), key=lambda n: (-len(n), n)):
        pattern = _name_pattern(name)
        if pattern.search(normal):
            found.add(name)
            normal = pattern.sub(" ", normal)
    return found, normal


def _without_apps(text: str | None, f: UserFeatures) -> str:
    """The normalised text with the user's own app names blanked out: an app's name is no
    claim about a category, a time or a share ("Toutiao news", "Keep fitness")."""
    return _find(_normal(text), [a for a, _ in f.top_apps])[1]


def weekend_share(f: UserFeatures) -> float:
    """Share of the user's events on Saturday and Sunday (pi_time rows 5-6)."""
    return float(f.pi_time[5:].sum())


def daypart_shares(f: UserFeatures) -> list[tuple[str, float]]:
    """(part of the day, share of events) for each of ``DAYPARTS``, largest first (ties in
    ``DAYPARTS`` order)."""
    by_hour = f.pi_time.sum(axis=0)  # (24,)
    shares = [(name, float(by_hour[list(hours)].sum())) for name, hours in DAYPARTS.items()]
    return sorted(shares, key=lambda s: -s[1])


def mentioned(text: str | None, names: Iterable[str]) -> set[str]:
    """The names that occur in ``text`` as whole words (case-insensitive, "_" = " ").

    Longer names are matched first and blanked out, so "Business affairs" does not also count
    as a mention of "Business".
    """
    return _find(_normal(text), names)[0]


def _venues(f: UserFeatures) -> set[str]:
    """Venue ids count as names only for location-only users, whose profiles name them (an app
    user's base-station ids would match numbers such as percentages)."""
    return set() if f.uses_apps else {v for v, _, _ in f.top_venues}


def used_names(f: UserFeatures) -> set[str]:
    """App and place categories and places with at least one event in the user's history
    (places beyond the top ones are known only where apps were used, as rows of C_u)."""
    categories = {c for c, n in zip(f.app_categories, f.C_u.sum(axis=0)) if n > 0}
    places = {p for p, n in zip(f.locations, f.C_u.sum(axis=1)) if n > 0}
    places |= set(f.place_category_shares) | {p for p, _ in f.top_places} | _venues(f)
    return (categories | places) - {UNKNOWN_CATEGORY, NO_LOCATION}


def evidence_names(f: UserFeatures) -> list[str]:
    """E_u: the top-3 intents (app categories, or place categories for a location-only user)
    and the main place."""
    names = [c for c, _ in f.top_intents[:3]]
    if f.main_place is not None:
        names.append(f.main_place)
    return names


def vocabulary(features: Iterable[UserFeatures]) -> set[str]:
    """Every category and place name of the population (what a profile could name)."""
    names: set[str] = set()
    for f in features:
        names |= set(f.app_categories) | set(f.locations) | set(f.place_category_shares)
        names |= {p for p, _ in f.top_places} | _venues(f)
    return names - {UNKNOWN_CATEGORY, NO_LOCATION}


def consistency_score(text: str | None, f: UserFeatures, names: set[str]) -> float:
    """c(y | H_u) = R(y) - F(y) (module docstring); ``names`` = ``vocabulary(...)``."""
    evidence = evidence_names(f)
    named = mentioned(text, names | set(evidence))
    recall = len(named & set(evidence)) / len(evidence) if evidence else 0.0
    false = len(named - used_names(f)) / len(named) if named else 0.0
    return recall - false


def _ends(text: str) -> list[int]:
    """Offsets just after each sentence end: . ! ? (and closing quotes or brackets) before
    whitespace or the end; a period before a digit or lowercase letter ("e.g. news") is none."""
    ends = []
    for m in _END.finditer(text):
        rest = text[m.end():].lstrip()
        if "." in m.group() and rest and (rest[0].isdigit() or rest[0].islower()):
            continue
        ends.append(m.end())
    return ends


def split_sentences(text: str | None) -> list[str]:
    """The sentences of a text (stripped, empty ones left out); a trailing fragment without
    a sentence end is the last one."""
    text = text if isinstance(text, str) else ""
    starts = [0, *_ends(text)]
    pieces = [text[a:b].strip() for a, b in zip(starts, [*starts[1:], len(text)])]
    return [p for p in pieces if p]


def end_at_sentence(text: str | None) -> str | None:
    """The text cut just after its last sentence end (stripped); None without one."""
    ends = _ends(text or "")
    return text[:ends[-1]].strip() if ends else None


@dataclass(frozen=True)
class Claim:
    """One checkable statement of a profile: ``kind`` in KINDS, in sentence ``sentence``."""

    kind: str
    text: str
    sentence: int
    refuted: bool
    reason: str = ""


def stated_shares(f: UserFeatures) -> list[float]:
    """Every share the features (and so the prompt) state, in [0, 1]."""
    shares = [s for _, s in f.top_categories] + list(f.place_category_shares.values())
    shares += [s for _, s in f.top_places] + [s for _, s, _ in f.top_venues]
    if f.uses_apps:
        shares.append(f.unknown_share)
    if f.timed and f.n_used:
        shares.append(weekend_share(f))
    return shares


def _time_claim(label: str, days: tuple[int, ...], hours: tuple[int, ...], f: UserFeatures,
                min_share: float) -> tuple[bool, str]:
    if not f.timed:
        return True, "the data records no times"
    share = float(f.pi_time[np.ix_(days, hours)].sum())
    if share < min_share:
        return True, f"only {share:.1%} of events are in the {label} (under {min_share:.0%})"
    return False, ""


def _number_claim(value: float, shares: Sequence[float]) -> tuple[bool, str]:
    if not shares:
        return True, "the data states no shares"
    if any(abs(value - round(100 * s)) <= 1 for s in shares):
        return False, ""
    return True, f"no stated share is within 1 point of {value:g}%"


def claims(text: str | None, f: UserFeatures, names: set[str], *,
           min_share: float = MIN_SHARE) -> list[Claim]:
    """The name, time and number claims of each sentence (each once per sentence), checked.

    ``names`` = ``vocabulary(...)``; the user's evidence names are added to it. The user's
    own app names are blanked out first; percentages are read before names are blanked out,
    time words after (a place "Nightlife Spot" is no claim about the night)."""
    names = names | set(evidence_names(f))
    used, shares = used_names(f), stated_shares(f)
    found = []
    for i, sentence in enumerate(split_sentences(text)):
        normal = _without_apps(sentence, f)
        for m in _PERCENT.finditer(normal):
            value = float(m.group(1))
            found.append(Claim("number", f"{value:g}%", i, *_number_claim(value, shares)))
        named, rest = _find(normal, names)
        for name in sorted(named):
            refuted = name not in used
            reason = f"{name!r} is not in the user's history" if refuted else ""
            found.append(Claim("name", name, i, refuted, reason))
        for pattern, label, days, hours in _TIMES:
            if pattern.search(rest):
                found.append(Claim("time", label, i, *_time_claim(label, days, hours, f,
                                                                   min_share)))
    unique: dict[tuple[str, str, int], Claim] = {}
    for c in found:
        unique.setdefault((c.kind, c.text, c.sentence), c)
    return list(unique.values())


def contradictions(text: str | None, f: UserFeatures, names: set[str], *,
                   min_share: float = MIN_SHARE) -> list[Claim]:
    """The refuted claims of a text."""
    return [c for c in claims(text, f, names, min_share=min_share) if c.refuted]


def drop_contradicting(text: str | None, f: UserFeatures, names: set[str], *,
                       min_share: float = MIN_SHARE) -> tuple[str, int]:
    """The text without the sentences that hold a refuted claim, and how many were dropped."""
    bad = {c.sentence for c in contradictions(text, f, names, min_share=min_share)}
    sentences = split_sentences(text)
    kept = [s for i, s in enumerate(sentences) if i not in bad]
    return " ".join(kept), len(sentences) - len(kept)


@dataclass(frozen=True)
class FaithfulnessReport:
    """Faithfulness of ``n_users`` profiles: named-fact recall (whole-word mentions, the user's
    app names blanked, over the users with intents / with places) and refuted claims (empty
    texts claim nothing: report failed profiles beside this)."""

    n_users: int
    top1_category: float
    top3_categories: float
    n_place_users: int
    top1_place: float | None
    n_claims: int
    n_refuted: int
    contradiction_rate: float  # share of profiles with at least one refuted claim
    claim_contradiction_rate: float  # refuted / all claims (nan without claims)
    refuted_by_kind: dict[str, int]
    mean_consistency: float  # mean c(y | H_u)


def _recall(text: str | None, f: UserFeatures) -> tuple[bool | None, float | None, bool | None]:
    """(top-1 category named, share of the top-3 named, top place named); None where the
    user has no category / no place."""
    blank = _without_apps(text, f)
    cats = [c for c, _ in f.top_intents[:3]]
    named = _find(blank, cats)[0] if cats else set()
    top1 = cats[0] in named if cats else None
    top3 = len(named) / len(cats) if cats else None
    place = (f.main_place in _find(blank, [f.main_place])[0]) if f.main_place else None
    return top1, top3, place


def _mean(values: Sequence) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def measure(texts: Sequence[str | None], features: Sequence[UserFeatures],
            names: set[str] | None = None, *, min_share: float = MIN_SHARE) -> FaithfulnessReport:
    """Recall, contradictions and consistency of each user's profile text."""
    if len(texts) != len(features):
        raise ValueError(f"{len(texts)} texts for {len(features)} users")
    names = names if names is not None else vocabulary(features)
    by_kind = dict.fromkeys(KINDS, 0)
    n_claims = n_refuted = contradicting = 0
    scores, recalls = [], []
    for text, f in zip(texts, features):
        found = claims(text, f, names, min_share=min_share)
        refuted = [c for c in found if c.refuted]
        for c in refuted:
            by_kind[c.kind] += 1
        n_claims += len(found)
        n_refuted += len(refuted)
        contradicting += bool(refuted)
        scores.append(consistency_score(text, f, names))
        recalls.append(_recall(text, f))
    n = len(texts)
    top1, top3, place = zip(*recalls) if recalls else ((), (), ())
    return FaithfulnessReport(
        n_users=n,
        top1_category=_mean(top1) if _mean(top1) is not None else math.nan,
        top3_categories=_mean(top3) if _mean(top3) is not None else math.nan,
        n_place_users=sum(p is not None for p in place),
        top1_place=_mean(place),
        n_claims=n_claims,
        n_refuted=n_refuted,
        contradiction_rate=contradicting / n if n else math.nan,
        claim_contradiction_rate=n_refuted / n_claims if n_claims else math.nan,
        refuted_by_kind=by_kind,
        mean_consistency=float(np.mean(scores)) if scores else math.nan,
    )
