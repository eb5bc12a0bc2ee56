"""Behaviour sequences and windows for next-intent prediction (eq. 1)."""

import numpy as np
import pandas as pd
import pytest
import torch

from generative.intent.data import (
    HONOR,
    MOBILE,
    NO_LOCATION,
    PAD,
    WITHIN_SLOT_BINS,
    IntentVocab,
    age_bucket,
    build_samples,
    build_sequences,
    latest_windows,
    n_age_buckets,
    split_earlier_later,
    split_users,
)
from uscope.data import DataError
from uscope.data.foursquare import read_foursquare


def table() -> pd.DataFrame:
    rows = [("u1", "2017-01-17 08:10", "wechat", "chat"),
            ("u1", "2017-01-17 08:20", "wechat", "chat"),      # same app, same hour: collapsed
            ("u1", "2017-01-17 08:30", "taobao", "shop"),
            ("u1", "2017-01-17 09:05", "wechat", "chat"),
            ("u1", "2017-01-17 10:00", "game", "play"),
            ("u2", "2017-01-17 07:00", "taobao", "shop"),
            ("u2", "2017-01-17 07:40", "game", "play")]
    return pd.DataFrame(rows, columns=["user_id", "timestamp", "app", "app_category"]).assign(
        timestamp=lambda d: pd.to_datetime(d["timestamp"]))


def test_sequences_collapse_per_slot_and_keep_order():
    cfg = HONOR
    vocab = IntentVocab.fit(table(), cfg)
    assert vocab.intents == ["chat", "play", "shop"] and vocab.locations == [NO_LOCATION]
    seqs = build_sequences(table(), cfg, vocab)
    assert seqs.user_ids == ["u1", "u2"]
    assert seqs.offsets.tolist() == [0, 4, 6]
    names = [vocab.intents[i] for i in seqs.intent]
    assert names == ["chat", "shop", "chat", "play", "shop", "play"]
    assert seqs.slot.tolist() == [8, 8, 9, 10, 7, 7]
    assert set(seqs.weekday.tolist()) == {1}                   # 2017-01-17 was a Tuesday


def test_windows_are_right_padded_last_events():
    cfg = HONOR.__class__(input_length=2)
    vocab = IntentVocab.fit(table(), cfg)
    seqs = build_sequences(table(), cfg, vocab)
    samples = build_samples(seqs, cfg)
    assert len(samples) == 3 + 1                                 # targets need one past event
    assert samples.length.tolist() == [1, 2, 2, 1]
    assert samples.event[0, 1] == PAD and samples.slot[0, 1] == 0
    # target 3 (u1's "play" at 10:00) sees the two previous behaviours, oldest first
    assert samples.event[2].tolist() == seqs.event[1:3].tolist()
    assert samples.target.tolist() == seqs.intent[[1, 2, 3, 5]].tolist()
    assert samples.intent_history[0].tolist() == [int(seqs.intent[0]), -1]
    # the query time is the target's own weekday and slot (1-based, as in the window)
    assert samples.query_slot.tolist() == (seqs.slot[[1, 2, 3, 5]] + 1).tolist()
    assert samples.query_weekday.tolist() == (seqs.weekday[[1, 2, 3, 5]] + 1).tolist()
    latest = latest_windows(seqs, cfg)
    assert latest.event[0].tolist() == seqs.event[2:4].tolist()
    assert latest.target.tolist() == [-1, -1]
    assert latest.query_slot.tolist() == [10 + 1, 7 + 1]        # each user's last slot
    later = latest_windows(seqs, cfg, at="2017-01-21 18:45")     # a Saturday evening
    assert later.query_slot.tolist() == [19, 19] and later.query_weekday.tolist() == [6, 6]
    # ages relative to the query slot's start: u1's "play" at 10:00 after shop 08:30, chat 09:05
    w = WITHIN_SLOT_BINS
    assert samples.age[2].tolist() == [w + 2, w + 1]           # 1.5 h -> 2 slots, 55 min -> 1
    assert samples.age[0].tolist() == [1 + 1, 0]               # 08:10 is in 08:00's 2nd sixth
    assert samples.age[3].tolist() == [1, 0]                    # u2's 07:00, query slot 07:00


def test_age_buckets_cover_the_vocabulary():
    start = 10 * 3600.0
    events = start - np.array([-3599, -600, 0, 1, 3600, 3601, 86400, 10 * 86400], np.float64)
    got = age_bucket(np.full(len(events), start), events, 60)
    w = WITHIN_SLOT_BINS
    assert got.tolist() == [w, 2, 1, w + 1, w + 1, w + 2, w + 24, w + 25]
    assert got.max() == n_age_buckets(24) - 1 and got.min() >= 1


def test_bad_input_names_the_field():
    bad = table().drop(columns=["app_category"])
    with pytest.raises(DataError, match="app_category"):
        IntentVocab.fit(bad, HONOR)
    vocab = IntentVocab.fit(table(), HONOR)
    other = table()
    other.loc[2, "app_category"] = "never seen"
    with pytest.raises(DataError, match="never seen"):
        build_sequences(other, HONOR, vocab)
    with pytest.raises(DataError, match="location_category"):
        IntentVocab.fit(table().assign(location_id="a", location_category=None), MOBILE)


def test_user_split_and_earlier_later_split():
    population, held_out = split_users(10, 3, seed=1)
    assert len(held_out) == 3 and sorted(population + held_out) == list(range(10))
    folds = [split_users(10, 3, seed=1, fold=k)[1] for k in range(3)]
    assert folds[0] == held_out                          # fold 0 is the default split
    assert len(set().union(*folds)) == 9                 # disjoint blocks of 3
    with pytest.raises(ValueError, match="fold must be in 0..2"):
        split_users(10, 3, seed=1, fold=3)
    vocab = IntentVocab.fit(table(), HONOR)
    seqs = build_sequences(table(), HONOR, vocab)
    tune, test = split_earlier_later(build_samples(seqs, HONOR), seqs)
    hours = np.floor(seqs.time_s / 3600)
    for u in (0,):
        t_hours = hours[tune.position[tune.user == u].numpy()]
        s_hours = hours[test.position[test.user == u].numpy()]
        assert len(s_hours) and t_hours.max() < s_hours.min()
    assert (test.user == 1).sum() == 0           # u2 has one target hour: tuning only


def test_weekly_split_on_real_foursquare_keeps_whole_weeks_apart(shared_data):
    """Months of real check-ins: the split unit is the reader's week (Monday to Sunday), each
    user's first ceil(half) of its target weeks tune and no week is on both sides."""
    fsq = read_foursquare(shared_data / "foursquare_nyc")
    vocab = IntentVocab.fit(fsq.events, MOBILE)
    seqs = build_sequences(fsq.events, MOBILE, vocab)
    samples = build_samples(seqs, MOBILE, list(range(12)))
    tune, test = split_earlier_later(samples, seqs, unit="week")
    # the reader's week rank of each target, from its own week starts (no arithmetic shared)
    stamps = pd.to_datetime(seqs.time_s, unit="s")
    week_start = (stamps - pd.to_timedelta(stamps.dayofweek, unit="D")).normalize()
    for k in range(12):
        user = seqs.user_ids[k]
        starts = set(fsq.weeks.loc[fsq.weeks["user_id"] == user, "start"])
        t_weeks = set(week_start[tune.position[tune.user == k].numpy()])
        s_weeks = set(week_start[test.position[test.user == k].numpy()])
        assert t_weeks | s_weeks <= starts                     # periods are the reader's weeks
        assert s_weeks and max(t_weeks) < min(s_weeks)         # earlier weeks tune
        assert len(t_weeks) == int(np.ceil(0.5 * len(t_weeks | s_weeks)))
    hourly, _ = split_earlier_later(samples, seqs, unit="hour")
    assert len(hourly) != len(tune)                            # the unit changes the split
    with pytest.raises(ValueError, match="unit must be one of hour, day, week"):
        split_earlier_later(samples, seqs, unit="month")


def test_real_netfp_sequences(netfp_events):
    events, _ = netfp_events
    part = events[events["user_id"].isin(events["user_id"].unique()[:50])]
    vocab = IntentVocab.fit(events, HONOR)
    assert vocab.n_intents == 19 and len(vocab.events) == 52
    seqs = build_sequences(part, HONOR, vocab)
    # netfp holds one row per (device, hour, app): exactly one behaviour per row
    rows = part.assign(hour=part["timestamp"].dt.hour).drop_duplicates(["user_id", "hour", "app"])
    assert len(seqs.event) == len(rows)
    samples = build_samples(seqs, HONOR)
    assert len(samples) == len(seqs.event) - len(seqs.user_ids)
    assert torch.all(samples.length >= 1) and torch.all(samples.length <= 30)
