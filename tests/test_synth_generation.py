"""Constrained synthesis with the real SmolLM2 and outlines (eq. 25, Sec. 5.2).

The property test runs the real constrained decoder on a few drawn constraints; the pure
constraint logic is covered over many cases in test_synth_constraint.py.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uscope.data import EVENT_COLUMNS
from uscope.synth import (
    ExplorationPolicy,
    FreeTextDecoder,
    OutlinesDecoder,
    PairConstraint,
    SynthConfig,
    generate_user,
    plan_users,
    synthesize,
)
from uscope.synth.generate import _well_formed, user_seed
from uscope.synth.pairs import exploration_candidates, population_pairs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def decoder(smollm2, torch_one_thread):
    return OutlinesDecoder(*smollm2)


@pytest.fixture(scope="module")
def profiles(simulated):
    from uscope.profile import profile_users

    return profile_users(simulated.events, backend="heuristic")


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(user=st.integers(0, 13), n_allowed=st.integers(1, 4), n_candidates=st.integers(1, 6),
       budget=st.integers(0, 2), seed=st.integers(0, 100))
def test_real_constrained_generation_keeps_the_invariant(simulated, profiles, decoder, user,
                                                         n_allowed, n_candidates, budget, seed):
    """Every generated pair is allowed, or an offered candidate within the budget."""
    config = SynthConfig(sequences_per_user=2, events_per_sequence=3, seed=seed,
                         exploration=ExplorationPolicy(budget=budget, mode="always"))
    plan = plan_users(simulated.events, profiles, config, users=[str(user)])[0]
    allowed = plan.constraint.allowed[:n_allowed]
    candidates = exploration_candidates(allowed, population_pairs(simulated.events),
                                        n_candidates)
    plan = dataclasses.replace(plan, constraint=PairConstraint.build(allowed, candidates, budget))
    outcome = generate_user(plan, decoder, config)
    assert len(outcome.events) == 2 * 3 and outcome.stats["invalid"] == 0
    generated = list(zip(outcome.events["app"], outcome.events["location_id"]))
    inside = {(p.app, p.location_id) for p in allowed}
    offered = {(p.app, p.location_id) for p in candidates}
    outside = [g for g in generated if g not in inside]
    assert set(outside) <= offered
    assert outcome.stats["out_of_set"] == len(outside)
    assert outcome.stats["max_out_of_set_per_sequence"] <= budget


def test_synthesize_writes_schema_rows_at_the_users_hours(simulated, profiles, decoder):
    users = ["0", "1"]
    config = SynthConfig(sequences_per_user=2, events_per_sequence=2, seed=3,
                         exploration=ExplorationPolicy(mode="never"))
    result = synthesize(simulated.events, profiles, decoder, config, users=users)
    events = result.events
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert events["synthetic"].all() and len(events) == 2 * 2 * 2
    for user in users:
        real = simulated.events[simulated.events["user_id"] == user]
        mine = events[events["user_id"] == user]
        real_pairs = set(zip(real["app"], real["location_id"]))
        assert set(zip(mine["app"], mine["location_id"])) <= real_pairs
        hours = set(pd.to_datetime(real["timestamp"]).dt.floor("h"))
        assert set(pd.to_datetime(mine["timestamp"]).dt.floor("h")) <= hours
    assert result.report["events"].tolist() == [4, 4]
    assert result.report["out_of_set"].sum() == 0
    again = synthesize(simulated.events, profiles, decoder, config, users=users)
    pd.testing.assert_frame_equal(events, again.events)  # seeded: reproducible


def test_unconstrained_decoder_counts_what_falls_outside(simulated, profiles, smollm2):
    """The free-text baseline may write anything; only offered pairs become events."""
    free = FreeTextDecoder(*smollm2)
    config = SynthConfig(sequences_per_user=2, events_per_sequence=2,
                         exploration=ExplorationPolicy(budget=1, mode="always"))
    plan = plan_users(simulated.events, profiles, config, users=["2"])[0]
    outcome = generate_user(plan, free, config)
    assert outcome.stats["invalid"] + len(outcome.events) == 4
    assert 0 <= outcome.stats["malformed"] <= outcome.stats["invalid"]
    assert outcome.stats["max_out_of_set_per_sequence"] <= 1
    offered = {(p.app, p.location_id) for p in plan.constraint.allowed + plan.constraint.candidates}
    assert set(zip(outcome.events["app"], outcome.events["location_id"])) <= offered


def test_free_text_is_well_formed_only_as_a_full_pair_line():
    assert _well_formed(" Games/1 @ Residence/3\n")
    assert _well_formed(" Games/1 @ -\n")
    assert not _well_formed(" Business, 32 @ Residence/2\n")
    assert not _well_formed(" Games/1 @ Residence/3")  # cut before the newline


def test_user_seed_is_stable_and_user_specific():
    assert user_seed(0, "a") == user_seed(0, "a") != user_seed(0, "b")
    assert user_seed(1, "a") != user_seed(0, "a")


def test_synthetic_input_is_refused(simulated, profiles, decoder):
    from uscope.synth import SyntheticInEvaluation

    fake = simulated.events.copy()
    fake["synthetic"] = True
    with pytest.raises(SyntheticInEvaluation, match="synthesis input"):
        synthesize(fake, profiles, decoder, SynthConfig(events_per_sequence=1), users=["0"])


def test_place_check_ins_synthesise_venues_of_the_users_history(shared_data, decoder):
    """Real Foursquare check-ins (no apps): the generated events are the user's own venues
    (app "-", nothing invented), at the user's hours, and eq. 26 is read on place x hour."""
    from uscope.data.datasets import load_dataset
    from uscope.synth import fidelity

    events = load_dataset("foursquare-nyc").events
    users = sorted(events["user_id"].astype(str).unique())[:2]
    mine = events[events["user_id"].astype(str).isin(users)]
    from uscope.profile import profile_users

    config = SynthConfig(sequences_per_user=1, events_per_sequence=3, seed=1,
                         exploration=ExplorationPolicy(budget=0))
    result = synthesize(mine, profile_users(mine, backend="heuristic"), decoder, config)
    assert len(result.events) == 2 * 3 and result.events["app"].isna().all()
    for user, generated in result.events.groupby("user_id"):
        real = mine[mine["user_id"].astype(str) == user]
        assert set(generated["location_id"]) <= set(real["location_id"])
        venue_category = dict(zip(real["location_id"], real["location_category"]))
        assert all(venue_category[v] == c for v, c in
                   zip(generated["location_id"], generated["location_category"]))
    result_fidelity = fidelity(mine, result.events, against="hour")
    generated_categories = set(result.events["location_category"])
    assert set(result_fidelity.real.index) == generated_categories  # rows: places generated
    assert set(result_fidelity.real.columns) <= {f"{h:02d}-{h + 3:02d}h" for h in range(0, 24, 3)}
