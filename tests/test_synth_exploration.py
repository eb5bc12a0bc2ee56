"""Exploratory intent read from the profile, and the budget it grants."""

from __future__ import annotations

import pytest

from uscope.synth.exploration import ExplorationPolicy, detect_exploration


@pytest.mark.parametrize("text", [
    "A curious user who likes to explore new places on weekends.",
    "They follow a varied daily routine.",
    "Often tries new apps, especially games.",
    "An adventurous traveller with diverse interests.",
])
def test_exploratory_profiles_are_detected(text):
    signal = detect_exploration(text)
    assert signal.exploratory and signal.cues


@pytest.mark.parametrize("text", [
    "They follow a regular daily routine at Residence.",
    "This user never explores: the same three apps every day.",
    "Not very varied; rarely tries new places.",
    "",
    None,
])
def test_routine_or_negated_profiles_are_not_exploratory(text):
    assert not detect_exploration(text).exploratory


def test_heuristic_profile_wording_maps_to_the_signal(simulated):
    """The heuristic writer says "a varied daily routine" for inconsistent days, "a regular"
    otherwise; the detector follows that wording."""
    from uscope.profile import profile_users

    profiles = profile_users(simulated.events, backend="heuristic")
    for text in profiles.frame["profile"]:
        assert detect_exploration(text).exploratory == ("a varied daily routine" in text)


def test_policy_grants_the_budget_only_on_the_signal():
    policy = ExplorationPolicy(budget=3)
    assert policy.budget_for(policy.signal("explores new places")) == 3
    assert policy.budget_for(policy.signal("a regular routine")) == 0
    assert ExplorationPolicy(budget=3, mode="always").budget_for(
        ExplorationPolicy(mode="always").signal("a regular routine")) == 3
    never = ExplorationPolicy(budget=3, mode="never")
    assert never.budget_for(never.signal("explores new places")) == 0
    with pytest.raises(ValueError, match="budget"):
        ExplorationPolicy(budget=-1)
    with pytest.raises(ValueError, match="mode"):
        ExplorationPolicy(mode="sometimes")
