"""Exploratory intent read from the profile text P_u, and the explicit out-of-set budget.

Sec. 5.2: pairs outside H_u's co-occurrence are disallowed "unless exploratory intent is implied
by the semantic profile". ``detect_exploration`` looks for cue phrases (explores, varied, tries
new places, ...) that are not negated within the few words before them ("never explores",
"not very varied"). ``ExplorationPolicy`` turns the signal into a budget: the number of
out-of-set events one generated sequence may contain. A user without the signal gets 0.
``mode="always"``/``"never"`` override the detector (ablations, tests).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_CUES: tuple[str, ...] = (
    r"explor\w*",             # explore, explores, exploring, exploratory, explorer
    r"varied", r"variety", r"divers\w*",
    r"curious\w*", r"curiosity", r"adventur\w*", r"spontaneous\w*",
    r"irregular\w*", r"unpredictab\w*", r"novelty",
    r"(?:tries|try|trying|tried) (?:out )?(?:new|different)\b[\w ]{0,20}",
    r"new (?:apps?|places?|locations?|areas?|things|activities)",
    r"different (?:places?|locations?|areas?)",
)
NEGATIONS: tuple[str, ...] = ("not", "never", "no", "rarely", "seldom", "little", "without",
                              "hardly", "barely", "isn't", "doesn't", "don't", "less")
NEGATION_WINDOW = 3  # words before a cue that can negate it
MODES = ("profile", "always", "never")


@dataclass(frozen=True)
class ExplorationSignal:
    """Whether P_u implies exploratory intent, and the phrases that said so."""

    exploratory: bool
    cues: tuple[str, ...] = ()


def detect_exploration(profile: str | None, cues: Sequence[str] = DEFAULT_CUES,
                       negations: Sequence[str] = NEGATIONS) -> ExplorationSignal:
    """Cue phrases in ``profile`` that are not negated by one of the preceding few words."""
    text = " ".join((profile or "").lower().split())
    found = []
    for cue in cues:
        for match in re.finditer(rf"\b{cue}", text):
            before = re.findall(r"[\w']+", text[: match.start()])[-NEGATION_WINDOW:]
            if not any(word in negations for word in before):
                found.append(match.group(0).strip())
    return ExplorationSignal(bool(found), tuple(dict.fromkeys(found)))


@dataclass(frozen=True)
class ExplorationPolicy:
    """Budget of out-of-set pairs per generated sequence, granted on exploratory intent.

    ``budget``: at most this many events of one sequence may use a pair outside the user's
    allowed set (0 disables exploration); ``max_candidates``: how many out-of-set population
    pairs are offered to an exploratory user; ``mode``: "profile" (detect from P_u),
    "always" or "never".
    """

    budget: int = 2
    max_candidates: int = 32
    mode: str = "profile"
    cues: tuple[str, ...] = DEFAULT_CUES

    def __post_init__(self) -> None:
        if self.budget < 0:
            raise ValueError(f"exploration budget must be >= 0, got {self.budget}")
        if self.max_candidates < 0:
            raise ValueError(f"max_candidates must be >= 0, got {self.max_candidates}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    def signal(self, profile: str | None) -> ExplorationSignal:
        if self.mode == "always":
            return ExplorationSignal(True, ("mode=always",))
        if self.mode == "never":
            return ExplorationSignal(False)
        return detect_exploration(profile, self.cues)

    def budget_for(self, signal: ExplorationSignal) -> int:
        """Out-of-set events allowed per sequence for a user with this signal."""
        return self.budget if signal.exploratory else 0
