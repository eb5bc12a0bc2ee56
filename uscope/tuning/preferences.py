"""Preference triplets (x, y_w, y_l) for DPO (seed paper 000, Sec. 5.3, eq. 27).

x is the profiling prompt x_u (``prompts/profile_v2.j2``) of one user; y_w a profile that is
consistent with the user's history H_u (the teacher's, or the best of several samples); y_l a
profile from a heuristic or mismatched baseline: the heuristic writer's text, or the chosen
profile of another user (the one whose app-category usage is least like this user's).

"Consistent with H_u" is measured by the consistency score c(y | H_u) = R(y) - F(y) of
``uscope.profile.faithfulness`` (evidence recall minus false mentions), re-exported here.

A triplet is kept only when c(y_w | H_u) - c(y_l | H_u) > margin; the others are dropped and
counted, so every written pair prefers the profile that fits the evidence better.

Faithfulness pairs (``rejected="contradicting"``) come from the model's own samples of one
user, ranked by ``uscope.profile.faithfulness``: y_w = the most consistent sample without a
refuted claim that names some of the user's evidence (faithful and informative), y_l = the sample with the most refuted claims (a
category, place, time or share the features contradict). A user without both is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uscope.profile.backends import ProfileRequest, generate_with_retries
from uscope.profile.backends.heuristic import heuristic_profile
from uscope.profile.faithfulness import (
    consistency_score,
    contradictions,
    evidence_names,
    mentioned,
    used_names,
    vocabulary,
)
from uscope.profile.features import UserFeatures
from uscope.profile.quality import category_usage
from uscope.tuning.joblog import JobLog

__all__ = ["REJECTED_SOURCES", "PreferenceReport", "best_sample", "build_triplets",
           "collect_samples", "consistency_score", "evidence_names", "faithful_pair",
           "least_similar", "mentioned", "used_names", "vocabulary"]

REJECTED_SOURCES = ("mismatched", "heuristic", "contradicting")


@dataclass
class PreferenceReport:
    users: int = 0
    written: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> users
    chosen_scores: list[float] = field(default_factory=list)
    rejected_scores: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        mean = (lambda xs: round(float(np.mean(xs)), 4) if xs else None)
        return {"users": self.users, "written": self.written, "dropped": dict(self.dropped),
                "mean_chosen_consistency": mean(self.chosen_scores),
                "mean_rejected_consistency": mean(self.rejected_scores)}


def best_sample(samples: Sequence[str], f: UserFeatures, names: set[str]) -> tuple[str, float]:
    """The sample with the highest consistency score (the first one on ties)."""
    scores = [consistency_score(s, f, names) for s in samples]
    best = int(np.argmax(scores))
    return samples[best], scores[best]


def least_similar(users: Sequence[str], features: Mapping[str, UserFeatures]) -> dict[str, str]:
    """For each user, the other user whose app-category usage is least similar (cosine)."""
    usage, _ = category_usage([features[u] for u in users])  # (N, A)
    norm = np.linalg.norm(usage, axis=1, keepdims=True)
    unit = usage / np.where(norm > 0, norm, 1.0)
    similarity = unit @ unit.T  # (N, N)
    np.fill_diagonal(similarity, np.inf)
    return {u: users[int(np.argmin(similarity[i]))] for i, u in enumerate(users)}


def faithful_pair(samples: Sequence[str], f: UserFeatures, names: set[str]
                  ) -> tuple[tuple[str, float], tuple[str, float], int] | str:
    """(y_w, c_w), (y_l, c_l) and y_l's refuted claims from one user's samples, or why none."""
    refuted = [len(contradictions(s, f, names)) for s in samples]
    faithful = [s for s, n in zip(samples, refuted) if n == 0]
    if not faithful:
        return "no sample without a contradiction"
    faithful = [s for s in faithful if consistency_score(s, f, names) > 0]
    if not faithful:  # a vague text is no better answer than a contradicting one
        return "no faithful sample names the user's evidence"
    if max(refuted) == 0:
        return "no contradicting sample"
    worst = max(range(len(samples)), key=lambda i: (refuted[i],
                                                    -consistency_score(samples[i], f, names)))
    return (best_sample(faithful, f, names),
            (samples[worst], consistency_score(samples[worst], f, names)), refuted[worst])


def _row(r: ProfileRequest, chosen: tuple[str, float], rejected: tuple[str, float],
         source: str, **extra: Any) -> dict:
    return {"prompt": r.prompt.messages,
            "chosen": [{"role": "assistant", "content": chosen[0]}],
            "rejected": [{"role": "assistant", "content": rejected[0]}],
            "user_id": r.user_id, "chosen_consistency": round(chosen[1], 4),
            "rejected_consistency": round(rejected[1], 4), "rejected_source": source, **extra}


def _faithfulness_triplets(requests: Sequence[ProfileRequest],
                           samples: Mapping[str, Sequence[str]], names: set[str],
                           report: PreferenceReport) -> list[dict]:
    rows = []
    for r in requests:
        texts = [t for t in samples.get(r.user_id, []) if t and t.strip()]
        pair = faithful_pair(texts, r.features, names) if texts else \
            "no usable sample from the teacher"
        if isinstance(pair, str):
            report.dropped[pair] += 1
            continue
        chosen, rejected, refuted = pair
        report.chosen_scores.append(chosen[1])
        report.rejected_scores.append(rejected[1])
        rows.append(_row(r, chosen, rejected, "contradicting", rejected_refuted_claims=refuted))
    return rows


def build_triplets(requests: Sequence[ProfileRequest], samples: Mapping[str, Sequence[str]], *,
                   rejected: str = "mismatched", margin: float = 0.0,
                   names: set[str] | None = None) -> tuple[list[dict], PreferenceReport]:
    """One DPO row per user whose best sample beats its rejected profile by more than
    ``margin`` in consistency (``contradicting``: a faithful and a contradicting sample of
    the user's own, see ``faithful_pair``; the margin does not apply). ``requests`` carry x_u and the features; ``samples`` maps user
    -> candidate profiles y (from the teacher)."""
    if rejected not in REJECTED_SOURCES:
        raise ValueError(f"rejected must be one of {REJECTED_SOURCES}, got {rejected!r}")
    features = {r.user_id: r.features for r in requests}
    names = names if names is not None else vocabulary(features.values())
    report = PreferenceReport(users=len(requests))
    if rejected == "contradicting":
        rows = _faithfulness_triplets(requests, samples, names, report)
        report.written = len(rows)
        return rows, report
    chosen: dict[str, tuple[str, float]] = {}
    for r in requests:
        texts = [t for t in samples.get(r.user_id, []) if t and t.strip()]
        if texts:
            chosen[r.user_id] = best_sample(texts, r.features, names)
        else:
            report.dropped["no usable sample from the teacher"] += 1
    partner = least_similar(sorted(chosen), features) if len(chosen) > 1 else {}
    rows = []
    for r in requests:
        if r.user_id not in chosen:
            continue
        y_w, c_w = chosen[r.user_id]
        if rejected == "heuristic":
            y_l = heuristic_profile(r.features)
        elif r.user_id in partner:
            y_l = chosen[partner[r.user_id]][0]
        else:
            report.dropped["no other user to mismatch with"] += 1
            continue
        c_l = consistency_score(y_l, r.features, names)
        if y_l.strip() == y_w.strip() or c_w - c_l <= margin:
            report.dropped["chosen not more consistent than rejected"] += 1
            continue
        report.chosen_scores.append(c_w)
        report.rejected_scores.append(c_l)
        rows.append(_row(r, (y_w, c_w), (y_l, c_l), rejected))
    report.written = len(rows)
    return rows, report


def collect_samples(requests: Sequence[ProfileRequest], teacher: Any, log: JobLog, *,
                    samples: int = 1, batch_size: int = 8, retries: int = 1,
                    progress: Callable[[int], Any] | None = None) -> dict[str, list[str]]:
    """``samples`` candidate profiles per user from ``teacher`` (a profile backend), logged
    per batch so a killed run resumes; returns user -> texts (failed samples left out)."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    pending = [r for r in requests if r.user_id not in log]
    for start in range(0, len(pending), batch_size):
        batch = pending[start:start + batch_size]
        repeated = [r for r in batch for _ in range(samples)]
        outcomes = generate_with_retries(teacher, repeated, retries=retries, backoff_s=0.0)
        log.append({"key": r.user_id,
                    "samples": [o.text for o in outcomes[i * samples:(i + 1) * samples]],
                    "errors": [o.error for o in outcomes[i * samples:(i + 1) * samples]
                               if o.error]}
                   for i, r in enumerate(batch))
        if progress is not None:
            progress(len(batch))
    return {r.user_id: [t for t in log.records[r.user_id]["samples"] if t]
            for r in requests}
