"""Allowed-pair sets from H_u, exploration candidates, and the text format of sequences."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from uscope.data import DataError
from uscope.synth.pairs import (
    Pair,
    allowed_pairs,
    check_serialisable,
    exploration_candidates,
    pair_counts,
    population_pairs,
)
from uscope.synth.serialise import (
    TimedPair,
    format_sequence,
    generation_prompt,
    parse_sequence,
    prompt_header,
    timed_pairs,
)

NAMES = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="|/@"),
                min_size=1, max_size=10).filter(lambda s: s != "-")


@st.composite
def timed(draw):
    app, place = draw(st.sampled_from([(True, True), (True, False), (False, True)]))
    pair = Pair(draw(NAMES) if app else None, draw(NAMES) if app else None,
                draw(NAMES) if place else None, draw(NAMES) if place else None)
    return TimedPair(draw(st.integers(0, 6)), draw(st.integers(0, 23)), pair)


@given(st.lists(timed(), max_size=12))
def test_sequence_text_round_trips(events):
    assert parse_sequence(format_sequence(events)) == events


def test_parse_reports_the_bad_line():
    text = "Mon 08h | Games/1 @ Residence/3\nMon 9h | Games/1 @ Residence/3\n"
    with pytest.raises(ValueError, match="line 2"):
        parse_sequence(text)
    with pytest.raises(ValueError, match="not an 'app @ place' pair"):
        Pair.parse("Games/1 Residence/3")


def test_allowed_set_is_the_cooccurrence_support(simulated):
    events = simulated.events
    user = events["user_id"].iloc[0]
    history = events[events["user_id"] == user]
    allowed = allowed_pairs(history)
    expected = set(zip(history["app"].astype(str), history["location_id"].astype(str)))
    assert {(p.app, p.location_id) for p in allowed} == expected
    # categories ride along unchanged
    by_app = dict(zip(history["app"].astype(str), history["app_category"].astype(str)))
    assert all(by_app[p.app] == p.app_category for p in allowed)
    assert sum(pair_counts(history).values()) == len(history)


def test_exploration_candidates_are_real_out_of_set_pairs_by_frequency(simulated):
    events = simulated.events
    history = events[events["user_id"] == events["user_id"].iloc[0]]
    allowed = allowed_pairs(history)
    population = population_pairs(events)
    candidates = exploration_candidates(allowed, population, limit=10)
    assert len(candidates) == 10
    assert not set(candidates) & allowed
    counts = [population[c] for c in candidates]
    assert counts == sorted(counts, reverse=True)
    outside_best = max(n for p, n in population.items() if p not in allowed)
    assert counts[0] == outside_best
    assert exploration_candidates(allowed, population, limit=0) == ()


def test_timed_pairs_follow_the_event_rows(simulated):
    history = simulated.events.head(5)
    lines = timed_pairs(history)
    stamps = pd.to_datetime(history["timestamp"])
    assert [(t.weekday, t.hour) for t in lines] == list(zip(stamps.dt.dayofweek, stamps.dt.hour))
    assert [t.pair.app for t in lines] == history["app"].astype(str).tolist()


def test_prompt_is_header_then_context_then_time():
    ctx = [TimedPair(0, 8, Pair("News", "22", "Residence", "3"))]
    prompt = generation_prompt("Reads  the\nnews.", ctx, 1, 9)
    assert prompt.startswith(prompt_header("Reads the news."))
    assert prompt.endswith("Mon 08h | News/22 @ Residence/3\nTue 09h |")
    assert prompt_header(None).startswith("Profile: (no profile)")


def test_values_that_break_the_format_are_rejected_with_row_and_field(simulated):
    events = simulated.events.head(4).copy()
    events["app"] = events["app"].astype("string")
    events.loc[2, "app"] = "a/b"
    with pytest.raises(DataError) as info:
        check_serialisable(events, "trace.parquet")
    assert info.value.line == 2 and info.value.field == "app"
    assert "trace.parquet" in str(info.value)
    events = simulated.events.head(4).copy()
    events["location_category"] = events["location_category"].astype("string")
    events.loc[1, "location_category"] = "Home | Office"
    with pytest.raises(DataError, match="reserves") as info:
        check_serialisable(events)
    assert info.value.field == "location_category"


def test_a_place_check_in_is_a_pair_without_an_app():
    visit = Pair(None, None, "Food", "v12")
    assert visit.text() == "- @ Food/v12" and Pair.parse(visit.text()) == visit
    with pytest.raises(ValueError, match="an app or a place"):
        Pair(None, None, None, None)
    with pytest.raises(ValueError, match="neither an app nor a place"):
        Pair.parse("- @ -")
    with pytest.raises(ValueError, match="is not '<category>/<id>'"):
        Pair.parse("Food @ Food/v12")


def test_synthesis_input_keeps_app_uses_or_else_place_check_ins(simulated):
    from uscope.synth.pairs import synthesis_input

    events = simulated.events.copy()
    kept, _ = synthesis_input(events, "sim", "test")
    assert kept["app"].notna().all() and len(kept) == events["app"].notna().sum()
    visits = events.assign(app=None, app_category=None)
    visits.loc[visits.index[:3], "location_id"] = None
    kept, _ = synthesis_input(visits, "visits.csv", "test")
    assert len(kept) == len(visits) - 3 and kept["location_id"].notna().all()
    assert {p.app for p in pair_counts(kept)} == {None}
    with pytest.raises(DataError, match="no event has an app or a place id") as info:
        synthesis_input(visits.assign(location_id=None), "visits.csv", "test")
    assert info.value.field == "app" and "visits.csv" in str(info.value)


def test_an_app_without_its_category_is_rejected(simulated):
    events = simulated.events.head(4).copy()
    events["app_category"] = events["app_category"].astype("string")
    events.loc[3, "app_category"] = None
    with pytest.raises(DataError, match="needs its app_category") as info:
        check_serialisable(events, "trace.parquet")
    assert info.value.line == 3 and info.value.field == "app_category"


def test_pairs_sort_by_text_and_order_agrees_with_equality():
    """StudentLife: the same app used with and without a GPS fix nearby."""
    with_place, without = Pair("Tools", "a", "P", "1"), Pair("Tools", "a", None, None)
    visit = Pair(None, None, "P", "1")
    assert sorted([with_place, visit, without]) == [visit, without, with_place]  # "-" < "P"
    twin = Pair("Tools", "a", "P", "1")
    assert with_place <= twin and with_place >= twin and not with_place < twin
    assert without < with_place and with_place > without
    with pytest.raises(TypeError):
        _ = with_place < "Tools/a @ P/1"
    with pytest.raises(ValueError, match="come together"):
        Pair("Tools", None, "P", "1")          # a category without its app
    with pytest.raises(ValueError, match="come together"):
        Pair(None, "x", None, "1")             # a place id without its category


@pytest.mark.parametrize("value", ["Food @ Home", "Food ", " Food", "mail@home"])
def test_values_the_parser_would_change_are_rejected(simulated, value):
    events = simulated.events.head(3).copy()
    events["location_category"] = events["location_category"].astype("string")
    events.loc[1, "location_category"] = value
    with pytest.raises(DataError, match="reserves") as info:
        check_serialisable(events)
    assert info.value.line == 1 and info.value.field == "location_category"
