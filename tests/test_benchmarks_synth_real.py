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
from uscope.synth.pairs import Pair, pair_counts, synthesis_input
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
    check_ins = load_dataset("foursquare-nyc").events.head(50)
    assert with_place_categories(check_ins) == (check_ins, False)


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
    stranger = check_ins[check_ins["user_id"] == users[1]]
    foreign = stranger[~stranger["location_id"].isin(
        check_ins.loc[check_ins["user_id"] == users[0], "location_id"])].head(3)
    generated = pd.concat([own, foreign.assign(user_id=users[0])], ignore_index=True)
    stats = pd.DataFrame({"user_id": [users[0]], "budget": [1]})
    audit = constraint_audit(check_ins, generated, stats, sequences=3)
    assert audit == {"events": 9, "outside H_u": 3, "not a real pair": 0,
                     "users over budget": 0}
    assert constraint_audit(check_ins, generated, stats, sequences=2)["users over budget"] == 1
    invented = generated.assign(location_id=np.where(np.arange(9) == 0, "nowhere", 
                                                     generated["location_id"]))
    assert constraint_audit(check_ins, invented, stats, sequences=9)["not a real pair"] == 1
    assert sum(pair_counts(own).values()) == 6
