"""The splits and the no-LM anchors of benchmarks/bench_synth_real.py on real data: users or
time, places without a category, the user-frequency decoder and the constraint audit."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uscope.data import load_dataset
from uscope.data.schema import DataError
from uscope.synth.pairs import (
    Pair,
    allowed_pairs,
    exploration_candidates,
    population_pairs,
    synthesis_input,
)
from uscope.synth.serialise import completion_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_synth_real import (
    UserFrequencyDecoder,
    constraint_audit,
    split_time,
    split_users,
    with_place_categories,
)


@pytest.fixture(scope="module")
def check_ins(shared_data):
    events, _ = synthesis_input(load_dataset("foursquare-nyc").events, "fsq", "test")
    return events.assign(user_id=events["user_id"].astype(str))


@pytest.fixture(scope="module")
def student_apps(shared_data):
    events, own = with_place_categories(load_dataset("studentlife").events)
    assert own
    events, _ = synthesis_input(events, "studentlife", "test")
    return events


def test_user_split_is_disjoint_seeded_and_keeps_every_user(check_ins):
    split = split_users(check_ins, n_test=16, n_valid=8, seed=0)
    test, valid = set(split.test_users), set(split.valid_users)
    train = set(split.train["user_id"])
    assert len(test) == 16 and len(valid) == 8 and not (test & valid) and not (train & test)
    assert test | valid | train == set(check_ins["user_id"])
    assert set(split.test_real["user_id"]) == test and split.history is check_ins
    assert split_users(check_ins, 16, 8, seed=0).test_users == split.test_users
    assert split_users(check_ins, 16, 8, seed=1).test_users != split.test_users
    with pytest.raises(SystemExit, match="--split time"):
        split_users(check_ins.head(500), n_test=16, n_valid=8, seed=0)


def test_time_split_tests_only_users_with_later_events(student_apps):
    few = student_apps[student_apps["user_id"] == "u01"].head(2)   # 60% of 2: only history
    split = split_time(pd.concat([student_apps[student_apps["user_id"] == "u00"], few]))
    assert split.test_users == ["u00"] and set(split.test_real["user_id"]) == {"u00"}
    assert "u01" in set(split.history["user_id"])


def test_time_split_keeps_order_and_shares_per_user(student_apps):
    split = split_time(student_apps)
    assert split.valid_users == split.test_users == ["u00", "u01"]
    for user, history in split.history.groupby("user_id"):
        later = split.valid_real[split.valid_real["user_id"] == user]
        last = split.test_real[split.test_real["user_id"] == user]
        assert history["timestamp"].max() <= later["timestamp"].min()
        assert later["timestamp"].max() <= last["timestamp"].min()
        total = len(history) + len(later) + len(last)
        assert total == (student_apps["user_id"] == user).sum()
        assert len(history) == pytest.approx(0.6 * total, abs=1)
        assert len(last) == pytest.approx(0.2 * total, abs=1)


def test_a_place_without_a_category_is_its_own_category(student_apps):
    placed = student_apps[student_apps["location_id"].notna()]
    assert (placed["location_category"] == placed["location_id"]).all()
    assert student_apps.loc[student_apps["location_id"].isna(), "location_category"].isna().all()
    raw = load_dataset("studentlife").events
    placed = raw["location_id"].notna()
    assert raw.loc[placed, "location_category"].isna().all()  # the reader has no POI data
    assert len(with_place_categories(raw)[0]) == len(raw)
    check_ins = load_dataset("foursquare-nyc").events.head(50)
    same, changed = with_place_categories(check_ins)
    assert not changed
    pd.testing.assert_frame_equal(same, check_ins)


def test_user_frequency_decoder_draws_by_the_user_s_counts():
    a, b, c = (Pair(None, None, "Food", str(i)) for i in range(3))
    decoder = UserFrequencyDecoder({a: 8, b: 2})
    decoder.reseed(0)
    drawn = Counter(decoder.choose(["p"] * 5000, [a, b, c]))
    share = {p: drawn[completion_text(p)] / 5000 for p in (a, b, c)}
    assert share[a] == pytest.approx(8 / 11, abs=0.03)   # an unseen offered pair weighs 1
    assert share[b] == pytest.approx(2 / 11, abs=0.03)
    assert share[c] == pytest.approx(1 / 11, abs=0.03)


def test_constraint_audit_counts_pairs_outside_the_history(check_ins):
    users = sorted(check_ins["user_id"].unique())[:2]
    own = check_ins[check_ins["user_id"] == users[0]].head(6).copy()
    history = check_ins[check_ins["user_id"] == users[0]]
    allowed = allowed_pairs(history)
    offered = exploration_candidates(allowed, population_pairs(check_ins), limit=2)
    # two offered candidates, and one real venue of another user that was never offered
    rest = check_ins[~check_ins["location_id"].isin(history["location_id"])]
    unoffered = next(r for _, r in rest.iterrows()
                     if Pair(None, None, r["location_category"], r["location_id"])
                     not in offered)
    extra = pd.DataFrame([{**own.iloc[0].to_dict(), "location_id": p.location_id,
                           "location_category": p.location_category} for p in offered]
                         + [{**own.iloc[0].to_dict(), "location_id": unoffered["location_id"],
                             "location_category": unoffered["location_category"]}])
    generated = pd.concat([own, extra], ignore_index=True)
    stats = pd.DataFrame({"user_id": [users[0]], "budget": [1]})
    audit = constraint_audit(check_ins, generated, stats, sequences=3, max_candidates=2)
    assert audit == {"events": 9, "outside H_u": 3, "not an offered candidate": 1,
                     "users over K x budget": 0}
    assert constraint_audit(check_ins, generated, stats, 2, 2)["users over K x budget"] == 1
    assert constraint_audit(check_ins, own, stats, 1, 2)["outside H_u"] == 0


def test_bootstrap_lead_resamples_users_and_brackets_a_clear_lead(check_ins):
    from bench_synth_real import TUNED, UNIFORM, bootstrap_lead, lead_rows

    users = sorted(check_ins["user_id"].unique())[:8]
    real = check_ins[check_ins["user_id"].isin(users)]
    noon = real.assign(timestamp=real["timestamp"].dt.normalize() + pd.Timedelta(hours=12))
    generated = {TUNED: real, UNIFORM: noon}   # a perfect copy vs every visit moved to noon
    low, high, skipped = bootstrap_lead(real, generated, UNIFORM, "hour", 3, draws=40)
    assert 0 < low <= high and skipped == 0
    (row,) = lead_rows(real, generated, "hour", 3, seed=0, draws=40)
    assert row["rival"] == UNIFORM and low <= row["lead"] <= high
    same = bootstrap_lead(real, {TUNED: real, UNIFORM: real}, UNIFORM, "hour", 3, draws=10)
    assert same[:2] == (0.0, 0.0)


def test_seed_rows_score_every_generation_seed_and_count_the_wins(check_ins):
    from _synth_real_report import seed_verdict
    from bench_synth_real import TUNED, UNIFORM, seed_rows

    from uscope.synth import fidelity

    users = sorted(check_ins["user_id"].unique())[:8]
    real = check_ins[check_ins["user_id"].isin(users)]
    noon = real.assign(timestamp=real["timestamp"].dt.normalize() + pd.Timedelta(hours=12))
    by_seed = {0: {TUNED: real, UNIFORM: noon},                   # tuned wins
               1: {TUNED: noon, UNIFORM: real},                   # uniform wins
               2: {TUNED: real.sample(frac=1.0, replace=True, random_state=2), UNIFORM: noon}}
    rows = {r["source"]: r for r in seed_rows(real, by_seed, "hour", 3)}
    assert rows[TUNED]["MAE seed 0"] == 0.0
    assert rows[TUNED]["MAE seed 1"] == pytest.approx(fidelity(real, noon, against="hour").mae)
    assert rows[UNIFORM]["MAE mean"] == pytest.approx(sum(rows[UNIFORM]["_maes"]) / 3)
    assert rows[UNIFORM]["MAE sd"] > 0
    assert "**2 of 3**" in seed_verdict(list(rows.values()))


def test_the_first_generation_seed_keeps_the_single_seed_cache_key():
    from types import SimpleNamespace

    from bench_synth_real import generation_key

    args = SimpleNamespace(seed=0)
    assert generation_key("tuned", args, 0) == "test-tuned"
    assert generation_key("tuned", args, 1) == "test-tuned-gen1" != generation_key("tuned", args, 2)


def _perturbed(events: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A stand-in generation: a resample of the events at other hours, app categories shuffled."""
    rng = np.random.default_rng(seed)
    out = events.sample(frac=0.8, replace=True, random_state=seed)
    hours = pd.to_timedelta(rng.integers(0, 24, len(out)), unit="h")
    return out.assign(timestamp=out["timestamp"].dt.normalize() + hours,
                      app_category=rng.permutation(out["app_category"].to_numpy()))


@pytest.mark.parametrize("axis", ["hour", "app_category"])
def test_user_tables_score_each_resample_as_fidelity_does(check_ins, student_apps, axis):
    from uscope.synth import UserTables, fidelity

    apps = student_apps.assign(app_category=student_apps["app_category"].astype(str))
    gps_only = apps[apps["user_id"] == "u00"].assign(user_id="gps", app=None)  # fixes, no app
    unplaced = apps[apps["user_id"] == "u01"].assign(user_id="away", location_category=None)
    visitors = sorted(check_ins["user_id"].unique())[:6]
    places = check_ins[check_ins["user_id"].isin(visitors)].assign(app_category=None)
    untimed = places[places["user_id"] == visitors[0]].assign(user_id="untimed")
    untimed.loc[:, "timestamp"] = pd.NaT  # same dtype, no value
    real = pd.concat([apps, gps_only, unplaced, places, untimed])
    generated = _perturbed(real[real["user_id"] != "u01"], seed=3)  # u01 never generated
    tables = UserTables({"real": real, "gen": generated}, against=axis, hour_bin=3)

    def both(pick):
        """fidelity on the concatenated draw and UserTables on its weights (None: DataError)"""
        drawn = [pd.concat([side[side["user_id"] == u] for u in pick])
                 for side in (real, generated)]
        scores = []
        for score in (lambda: fidelity(*drawn, against=axis, hour_bin=3).mae,
                      lambda: tables.mae("real", "gen", tables.weights(pick))):
            try:
                scores.append(score())
            except DataError:
                scores.append(None)
        return scores

    # app uses without a place still make the table keep app uses only: nothing placed is left
    assert both(["away", "gps"]) == [None, None] == both(["away", visitors[1]])
    assert both(["untimed", visitors[1]]) == [None, None]  # no time (hour) or no app
    users = sorted(real["user_id"].unique())
    rng = np.random.default_rng(0)
    scored = 0
    for pick in [["gps", "gps"], ["u01"], ["untimed", "u00"], visitors,
                 *(rng.choice(users, len(users)) for _ in range(20))]:
        expected, got = both(pick)
        assert (expected is None) == (got is None), pick
        if expected is not None:
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
            scored += 1
    assert scored >= 10  # most draws have places (and, on the app axis, app uses) on both sides
    with pytest.raises(ValueError, match="has no events"):
        tables.weights(["nobody"])
