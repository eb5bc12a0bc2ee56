"""Profile-conditioned, constrained synthesis of app-location sequences (seed paper 000, eq. 25).

p(H_u^aug | P_u) = prod_t p(a_t, l_t | P_u, tau_t)   (eq. 25)

For each user: the times tau_t are drawn from the (day, hour) cells of the user's real history;
the pair (a_t, l_t) of each event is decoded, one constrained call per event, from the profile
P_u, the time and the last few generated lines. The decoder is offered the user's allowed pairs
(non-zero co-occurrence in H_u) and, while the exploratory budget of the sequence lasts, the
out-of-set candidates; ``BudgetCounter`` books every choice (Sec. 5.2). K sequences of a user
are decoded as one batch per step. Output rows follow the event schema with ``synthetic=True``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from uscope.data.schema import EVENT_COLUMNS, validate_events
from uscope.synth.constraint import BudgetCounter, ConstraintViolation, PairConstraint
from uscope.synth.exploration import ExplorationPolicy, ExplorationSignal
from uscope.synth.pairs import (
    Pair,
    allowed_pairs,
    exploration_candidates,
    population_pairs,
    synthesis_input,
)
from uscope.synth.serialise import TimedPair, completion_text, generation_prompt


class Decoder(Protocol):
    constrained: bool

    def reseed(self, seed: int) -> None: ...

    def choose(self, prompts: Sequence[str], options: Sequence[Pair]) -> list[str]: ...


@dataclass(frozen=True)
class SynthConfig:
    """How much is generated per user, and how."""

    sequences_per_user: int = 1      # K of H~_u = H_u U {H_u^aug}_1..K
    events_per_sequence: int = 24    # T' of eq. 25
    context_events: int = 4          # generated lines kept in the prompt
    exploration: ExplorationPolicy = field(default_factory=ExplorationPolicy)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("sequences_per_user", "events_per_sequence"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.context_events < 0:
            raise ValueError(f"context_events must be >= 0, got {self.context_events}")


@dataclass
class UserPlan:
    """Everything decided before decoding: conditioning text, constraint and the times."""

    user_id: str
    profile: str | None
    signal: ExplorationSignal
    constraint: PairConstraint
    times: list[pd.DatetimeIndex]  # K sorted sequences of T' timestamps
    seed: int


def user_seed(seed: int, user_id: str) -> int:
    """A stable per-user seed (independent of which other users are generated)."""
    return (seed * 1_000_003 + zlib.crc32(user_id.encode("utf-8"))) % (2**31 - 1)


def sample_times(stamps: pd.Series, n: int, rng: np.random.Generator) -> pd.DatetimeIndex:
    """n times drawn from the user's real (day, hour) cells, uniform within the hour, sorted."""
    hours = pd.to_datetime(stamps).dt.floor("h").to_numpy()
    picked = hours[rng.integers(0, len(hours), size=n)]
    seconds = rng.integers(0, 3600, size=n).astype("timedelta64[s]")
    return pd.DatetimeIndex(np.sort(picked + seconds))


def profile_text(profiles: Any, user: str) -> str | None:
    if isinstance(profiles, Mapping):
        if user not in profiles:
            raise KeyError(f"no profile for user {user!r}")
        return profiles[user]
    return profiles.profile_of(user)


def plan_users(events: pd.DataFrame, profiles: Any, config: SynthConfig,
               users: Sequence[str] | None = None, source: str = "events") -> list[UserPlan]:
    """Allowed sets, exploratory budgets and times of ``users`` (default: every user of the
    profile set, or of ``events`` when profiles is a mapping, that has events).

    ``profiles``: a ``ProfileSet`` or a mapping user id -> profile text. ``events`` must be real
    (``synthetic=False``): the allowed set is H_u's co-occurrence.
    """
    events, slices = synthesis_input(events, source, "synthesis input")
    if users is None:
        ids = list(profiles) if isinstance(profiles, Mapping) else profiles.ok.user_ids
        users = [u for u in ids if u in slices]
    missing = [u for u in users if u not in slices]
    if missing:
        raise KeyError(f"{len(missing)} user(s) have no events in {source}: {missing[:5]}")
    policy = config.exploration
    population = population_pairs(events) if policy.budget > 0 else None
    plans = []
    for user in users:
        history = events.iloc[slices[user]]
        profile = profile_text(profiles, user)
        signal = policy.signal(profile)
        budget = policy.budget_for(signal)
        allowed = allowed_pairs(history)
        candidates = exploration_candidates(allowed, population, policy.max_candidates) \
            if budget > 0 else ()
        seed = user_seed(config.seed, user)
        rng = np.random.default_rng(seed)
        times = [sample_times(history["timestamp"], config.events_per_sequence, rng)
                 for _ in range(config.sequences_per_user)]
        plans.append(UserPlan(user, profile, signal,
                              PairConstraint.build(allowed, candidates, budget), times, seed))
    return plans


@dataclass
class UserOutcome:
    """Generated rows of one user and what happened while decoding them."""

    events: pd.DataFrame
    stats: dict[str, Any]


def _resolve(text: str, options: Sequence[Pair], constrained: bool) -> Pair | None:
    lookup = {completion_text(p): p for p in options}
    if text in lookup:
        return lookup[text]
    if constrained:
        raise ConstraintViolation(f"constrained decoder returned {text!r}, not an offered pair")
    return None


def _well_formed(text: str) -> bool:
    """Whether free text is a pair line at all (offered or not)."""
    try:
        Pair.parse(text)
    except ValueError:
        return False
    return text.startswith(" ") and text.endswith("\n")


def generate_user(plan: UserPlan, decoder: Decoder, config: SynthConfig) -> UserOutcome:
    """Decode K sequences of T' events for one user (eq. 25), booking the budget per sequence.

    With an unconstrained decoder, an output that is not an offered pair is counted as invalid
    (``malformed`` when it is not even a pair line) and dropped (no event, not added to the
    context); the budget still bounds what is kept.
    """
    decoder.reseed(plan.seed)
    counters: list[BudgetCounter] = [plan.constraint.start() for _ in plan.times]
    contexts: list[list[TimedPair]] = [[] for _ in plan.times]
    rows: list[dict[str, Any]] = []
    invalid = malformed = 0
    for t in range(config.events_per_sequence):
        groups: dict[bool, list[int]] = {}
        for k, counter in enumerate(counters):
            groups.setdefault(counter.exploring, []).append(k)
        for members in groups.values():
            options = counters[members[0]].options()
            prompts = []
            for k in members:
                stamp = plan.times[k][t]
                recent = contexts[k][-config.context_events:] if config.context_events else []
                prompts.append(generation_prompt(plan.profile, recent, int(stamp.dayofweek),
                                                 int(stamp.hour)))
            texts = decoder.choose(prompts, options)
            for k, text in zip(members, texts):
                pair = _resolve(text, options, decoder.constrained)
                if pair is None:
                    invalid += 1
                    malformed += not _well_formed(text)
                    continue
                counters[k].record(pair)
                stamp = plan.times[k][t]
                contexts[k].append(TimedPair(int(stamp.dayofweek), int(stamp.hour), pair))
                rows.append({"user_id": plan.user_id, "timestamp": stamp, "app": pair.app,
                             "app_category": pair.app_category,
                             "location_id": pair.location_id,
                             "location_category": pair.location_category,
                             "traffic_bytes": None, "latitude": np.nan, "longitude": np.nan,
                             "synthetic": True})
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    stats = {"user_id": plan.user_id, "exploratory": plan.signal.exploratory,
             "cues": "; ".join(plan.signal.cues), "budget": plan.constraint.budget,
             "allowed_pairs": len(plan.constraint.allowed),
             "candidates": len(plan.constraint.candidates), "events": len(frame),
             "out_of_set": sum(c.out_of_set for c in counters),
             "max_out_of_set_per_sequence": max(c.out_of_set for c in counters),
             "invalid": invalid, "malformed": malformed}
    return UserOutcome(frame, stats)


@dataclass
class Synthesis:
    """Generated events (event schema, ``synthetic=True``) and one stats row per user."""

    events: pd.DataFrame
    report: pd.DataFrame


def synthesize(events: pd.DataFrame, profiles: Any, decoder: Decoder,
               config: SynthConfig | None = None, users: Sequence[str] | None = None,
               progress: Callable[[int], None] | None = None) -> Synthesis:
    """Generate K synthetic sequences for every user (in memory; see ``job`` for files)."""
    config = config or SynthConfig()
    frames, stats = [], []
    for plan in plan_users(events, profiles, config, users):
        outcome = generate_user(plan, decoder, config)
        frames.append(outcome.events)
        stats.append(outcome.stats)
        if progress is not None:
            progress(1)
    frame = pd.concat(frames, ignore_index=True) if frames else \
        pd.DataFrame(columns=list(EVENT_COLUMNS))
    return Synthesis(validate_events(frame, source="synthesis"), pd.DataFrame(stats))
