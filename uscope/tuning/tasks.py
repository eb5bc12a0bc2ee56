"""Recommendation tasks for chain-of-thought distillation (seed paper 000, Sec. 7.5, RQ5).

One ``TaskCase`` per (training user, task): a novel app, a novel location (place category) or
the next novel intent (app category), the item kinds of ``uscope.data.items``. Ground truth is
the novelty split (``uscope.data.splits.novelty_split``, the one the recommendation harness
scores on): items a user first used after the cut-off. Cases are built from the training
users' events only, so no target of a held-out user ever reaches a training example. The
candidates and the student prompt come from ``uscope.tuning.llm_task``, which the ``llm``
recommendation strategy also uses at inference, so an adapter trained on them is scored on
the prompt it learned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from uscope.data.items import UsageMatrix, item_column, known_items, used_items
from uscope.data.schema import validate_events
from uscope.data.splits import cutoff_time, novelty_split
from uscope.profile.backends.heuristic import heuristic_profile
from uscope.profile.features import FeatureConfig, UserFeatures
from uscope.profile.population import iter_features
from uscope.tuning.llm_task import NOUNS, candidate_shortlist, recommendation_prompt

TASKS = {"app": "novel app", "location": "novel location", "intent": "next (novel) intent"}
PLURALS = {"app": "apps", "location": "kinds of place", "intent": "kinds of app"}


@dataclass(frozen=True)
class TaskCase:
    """One question for the teacher, with its ground truth."""

    user_id: str
    kind: str  # "app" | "location" | "intent"
    profile: str  # y_u written from the history before the cut-off
    features: UserFeatures
    history: tuple[dict, ...]  # the most recent events before the cut-off, oldest first
    used: tuple[str, ...]  # items of this kind used before the cut-off
    candidates: tuple[str, ...]  # the llm strategy's shortlist (llm_task.candidate_shortlist)
    targets: frozenset[str]  # items first used after the cut-off (the novelty split)
    hint: str  # the target among the candidates used most after the cut-off
    student_prompt: str  # the user message of the training example

    @property
    def key(self) -> str:
        return f"{self.user_id}/{self.kind}"


@dataclass(frozen=True)
class CaseReport:
    """How many (user, task) pairs became cases, and why the others did not."""

    built: dict[str, int]  # kind -> cases
    no_new_item: dict[str, int]  # kind -> training users with no new item after the cut-off
    no_target_in_shortlist: dict[str, int]  # kind -> new items exist, none among candidates


def is_held_out(user_id: str, fraction: float, seed: int = 0) -> bool:
    """Stable user split by hash: the same users are held out in every script and run."""
    if not 0 <= fraction < 1:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    digest = hashlib.sha256(f"{seed}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < fraction


def split_users(users: Sequence[str], fraction: float, seed: int = 0
                ) -> tuple[list[str], list[str]]:
    """(training users, held-out users), each sorted."""
    held = sorted(u for u in users if is_held_out(str(u), fraction, seed))
    chosen = set(held)
    return sorted(str(u) for u in users if str(u) not in chosen), held


def _history_lines(rows: pd.DataFrame, n: int) -> tuple[dict, ...]:
    from uscope.profile.prompting import UserText

    lines = []
    for row in rows.tail(n).itertuples(index=False):
        place = row.location_category if isinstance(row.location_category, str) else None
        app = row.app if isinstance(row.app, str) else None  # None: a place observation
        lines.append({"when": row.timestamp.strftime("%a %H:%M"),
                      "app": UserText(app) if app else None,
                      "category": UserText(row.app_category) if app else None,
                      "place": UserText(place) if place else None})
    return tuple(lines)


def _after_counts(future: pd.DataFrame, column: str) -> Mapping[str, pd.Series]:
    return {str(user): rows[column].astype(str).value_counts()
            for user, rows in future.groupby("user_id")}


def build_cases(events: pd.DataFrame, users: Sequence[str],
                profiles: Mapping[str, str] | None = None, *,
                cutoff: str | float = 0.3, kinds: Sequence[str] = tuple(TASKS),
                max_candidates: int = 20, history_events: int = 10,
                features: FeatureConfig | None = None) -> tuple[list[TaskCase], CaseReport]:
    """Cases for the listed (training) users.

    ``profiles`` maps user -> profile text written from the history before the cut-off; None
    means the heuristic profiles (what ``profile_users(history, backend="heuristic")`` writes).
    """
    events = validate_events(events)
    users = sorted(str(u) for u in users)
    mine = events[events["user_id"].astype(str).isin(users)].reset_index(drop=True)
    cut = cutoff_time(events, cutoff)
    cases: list[TaskCase] = []
    built, no_new, no_hit = {}, {}, {}
    for kind in kinds:
        if kind not in TASKS:
            raise ValueError(f"unknown task {kind!r}; choose from {sorted(TASKS)}")
        history, targets = novelty_split(mine, kind, cut)
        column = item_column(kind, mine)  # decided on all the users' events
        if known_items(history, kind, column).empty:
            built[kind], no_new[kind], no_hit[kind] = 0, len(users), 0
            continue
        usage = UsageMatrix.build(history, kind, users=users,  # the llm strategy's catalogue
                                  column=column)
        after = _after_counts(mine[mine["timestamp"] >= cut], column)
        rows_of = history.groupby("user_id").indices
        with_history = [u for u in users if u in rows_of]
        feats = dict(zip(with_history, iter_features(history, with_history, features)))
        built[kind] = no_hit[kind] = 0
        no_new[kind] = sum(1 for u in with_history if u not in targets)
        for user in with_history:
            if user not in targets:
                continue
            own = history.iloc[rows_of[user]]
            profile = (heuristic_profile(feats[user]) if profiles is None
                       else profiles.get(user, ""))
            used = used_items(own, kind, column)
            candidates = [usage.items[i]
                          for i in candidate_shortlist(usage, used, max_candidates)]
            hits = [c for c in candidates if c in targets[user]]
            if not hits:
                no_hit[kind] += 1
                continue
            counts = after.get(user, pd.Series(dtype=int))
            hint = max(hits, key=lambda c: (int(counts.get(c, 0)), -candidates.index(c)))
            cases.append(TaskCase(
                user_id=user, kind=kind, profile=profile, features=feats[user],
                history=_history_lines(own, history_events),
                used=tuple(sorted(used)), candidates=tuple(candidates),
                targets=frozenset(targets[user]), hint=hint,
                student_prompt=recommendation_prompt(profile, used, kind, candidates)))
            built[kind] += 1
    return cases, CaseReport(built, no_new, no_hit)


def teacher_context(case: TaskCase, hinted: bool) -> dict:
    """Template variables of ``prompts/cot_v1.j2`` for one case."""
    from uscope.profile.prompting import UserText

    return {
        "profile": case.profile.strip() or "(no profile)",
        "history": list(case.history),
        "used": [UserText(u) for u in case.used[:20]],
        "plural": PLURALS[case.kind],
        "noun": NOUNS[case.kind],
        "candidates": [UserText(c) for c in case.candidates],
        "hint": UserText(case.hint) if hinted else None,
    }
