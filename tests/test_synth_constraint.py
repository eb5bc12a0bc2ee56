"""The synthesis constraint (Sec. 5.2) as pure logic, with property tests over many cases.

Invariant: every generated pair is in the user's allowed set unless the exploratory budget
permits it, and the number of out-of-set events of a sequence never exceeds the budget.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uscope.synth.constraint import ConstraintViolation, PairConstraint, choice_regex, escape
from uscope.synth.pairs import Pair
from uscope.synth.serialise import completion_text

WORDS = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="|/\n"),
                min_size=1, max_size=12).filter(lambda s: " @ " not in s and s.strip() == s
                                                 and s != "-")


@st.composite
def pairs(draw):
    place = draw(st.booleans())
    return Pair(draw(WORDS), draw(WORDS), draw(WORDS) if place else None,
                draw(WORDS) if place else None)


@st.composite
def constraints(draw):
    universe = draw(st.lists(pairs(), min_size=2, max_size=24, unique=True))
    n_allowed = draw(st.integers(1, len(universe) - 1))
    budget = draw(st.integers(0, 4))
    return PairConstraint.build(universe[:n_allowed], universe[n_allowed:], budget), universe


@settings(max_examples=300, deadline=None)
@given(data=constraints(), picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=40))
def test_any_chooser_keeps_pairs_allowed_and_the_budget(data, picks):
    """A chooser picking arbitrarily among the offered options never breaks the invariant."""
    constraint, _ = data
    counter = constraint.start()
    for pick in picks:
        options = counter.options()
        counter.record(options[pick % len(options)])
    allowed = set(constraint.allowed)
    outside = [p for p in counter.chosen if p not in allowed]
    assert len(outside) == counter.out_of_set <= constraint.budget
    assert set(outside) <= set(constraint.candidates)


@settings(max_examples=300, deadline=None)
@given(data=constraints(), picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=40))
def test_a_greedy_explorer_spends_exactly_the_budget(data, picks):
    """A chooser that always prefers out-of-set pairs is stopped after `budget` of them."""
    constraint, _ = data
    counter = constraint.start()
    for pick in picks:
        options = counter.options()
        outside = [p for p in options if p not in set(constraint.allowed)]
        counter.record(outside[pick % len(outside)] if outside else options[pick % len(options)])
    expected = min(constraint.budget, len(picks)) if constraint.candidates else 0
    assert counter.out_of_set == expected
    assert counter.remaining == constraint.budget - expected


@settings(max_examples=200, deadline=None)
@given(data=constraints(), pick=st.integers(0, 10_000))
def test_recording_an_unoffered_pair_raises(data, pick):
    constraint, universe = data
    counter = constraint.start()
    for _ in range(constraint.budget):  # spend the budget
        if counter.exploring:
            counter.record(constraint.candidates[0])
    outside = [p for p in universe if p not in set(constraint.allowed)]
    with pytest.raises(ConstraintViolation):
        counter.record(outside[pick % len(outside)])
    assert counter.out_of_set <= constraint.budget


@settings(max_examples=200, deadline=None)
@given(data=constraints())
def test_regex_admits_exactly_the_offered_completions(data):
    constraint, universe = data
    pattern = re.compile(choice_regex(constraint.allowed))
    for pair in universe:
        admitted = pattern.fullmatch(completion_text(pair)) is not None
        assert admitted == (pair in set(constraint.allowed))
    # no truncated or extended completion is admitted
    some = completion_text(constraint.allowed[0])
    assert pattern.fullmatch(some[:-1]) is None
    assert pattern.fullmatch(some + "x") is None


@given(st.text(max_size=30))
def test_escape_matches_the_literal_text(text):
    assert re.fullmatch(escape(text), text) is not None


def test_non_exploratory_constraint_drops_candidates_and_offers_only_allowed():
    a, b, c = (Pair("Games", str(i), "Residence", "3") for i in range(3))
    constraint = PairConstraint.build([a, b], [c], budget=0)
    assert constraint.candidates == ()
    counter = constraint.start()
    assert counter.options() == (a, b) and not counter.exploring
    with pytest.raises(ConstraintViolation, match="budget is spent"):
        counter.record(c)


def test_invalid_constraints_are_refused():
    a = Pair("Games", "1", "Residence", "3")
    with pytest.raises(ValueError, match="at least one allowed"):
        PairConstraint.build([], [a], 1)
    with pytest.raises(ValueError, match="outside the allowed set"):
        PairConstraint((a,), (a,), 1)
    with pytest.raises(ValueError, match="budget"):
        PairConstraint((a,), (), -1)
