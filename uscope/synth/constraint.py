"""The decoding constraint of Sec. 5.2 as plain logic: allowed set, candidates, budget counter.

For each event of a generated sequence the decoder may emit:
- any pair with non-zero co-occurrence in H_u (the allowed set), always;
- an out-of-set exploration candidate, only while the sequence's budget is not spent.
``BudgetCounter.options()`` is the set offered for the next event and ``record`` books the
chosen pair, raising ``ConstraintViolation`` for a pair that was not offered, so the number of
out-of-set events of a sequence can never exceed the budget. ``choice_regex`` renders an option
set as the regular expression that outlines (and vLLM's structured outputs) decode under: an
alternation of the exact completion strings, which compiles fast (no bounded repeats).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from uscope.synth.pairs import Pair
from uscope.synth.serialise import completion_text


class ConstraintViolation(RuntimeError):
    """A decoder produced a pair outside the options it was offered."""


@dataclass(frozen=True)
class PairConstraint:
    """Allowed pairs of one user, out-of-set candidates and the per-sequence budget."""

    allowed: tuple[Pair, ...]
    candidates: tuple[Pair, ...] = ()
    budget: int = 0

    def __post_init__(self) -> None:
        if not self.allowed:
            raise ValueError("a user needs at least one allowed (app, place) pair")
        if self.budget < 0:
            raise ValueError(f"budget must be >= 0, got {self.budget}")
        object.__setattr__(self, "allowed", tuple(sorted(set(self.allowed))))
        object.__setattr__(self, "candidates", tuple(sorted(set(self.candidates))))
        overlap = set(self.allowed) & set(self.candidates)
        if overlap:
            raise ValueError(f"candidates must lie outside the allowed set: {sorted(overlap)[:3]}")

    @classmethod
    def build(cls, allowed: Iterable[Pair], candidates: Iterable[Pair] = (),
              budget: int = 0) -> PairConstraint:
        return cls(tuple(allowed), tuple(candidates) if budget > 0 else (), budget)

    def start(self) -> BudgetCounter:
        """A fresh counter for one generated sequence."""
        return BudgetCounter(self)


@dataclass
class BudgetCounter:
    """Books one sequence's choices against its constraint."""

    constraint: PairConstraint
    out_of_set: int = 0
    chosen: list[Pair] = field(default_factory=list)
    _allowed: frozenset[Pair] = field(init=False, repr=False)
    _candidates: frozenset[Pair] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._allowed = frozenset(self.constraint.allowed)
        self._candidates = frozenset(self.constraint.candidates)

    @property
    def remaining(self) -> int:
        return self.constraint.budget - self.out_of_set

    @property
    def exploring(self) -> bool:
        """True when the next event may leave the allowed set."""
        return self.remaining > 0 and bool(self.constraint.candidates)

    def options(self) -> tuple[Pair, ...]:
        """The pairs the next event may use."""
        if self.exploring:
            return self.constraint.allowed + self.constraint.candidates
        return self.constraint.allowed

    def record(self, pair: Pair) -> None:
        in_set = pair in self._allowed
        if not in_set and not (self.exploring and pair in self._candidates):
            raise ConstraintViolation(
                f"{pair.text()!r} is outside the allowed set and "
                f"{'not a candidate' if self.remaining > 0 else 'the budget is spent'} "
                f"({self.out_of_set}/{self.constraint.budget} out-of-set events used)")
        self.out_of_set += 0 if in_set else 1
        self.chosen.append(pair)


_METACHARACTERS = frozenset("\\.^$*+?{}[]|()")


def escape(text: str) -> str:
    """Escape regex metacharacters only; a newline becomes ``\\n`` (portable across engines)."""
    return "".join("\\n" if ch == "\n" else "\\" + ch if ch in _METACHARACTERS else ch
                   for ch in text)


def choice_regex(options: Sequence[Pair]) -> str:
    """Regex admitting exactly ``completion_text(p)`` for p in ``options`` (longest first)."""
    if not options:
        raise ValueError("no options to build a constraint from")
    texts = sorted({completion_text(p) for p in options}, key=lambda t: (-len(t), t))
    return "(" + "|".join(escape(t) for t in texts) + ")"
