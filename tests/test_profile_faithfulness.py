"""Faithfulness as a measured quantity: sentences, claims checked against the features (names,
times, percentages), dropping contradicting sentences, and the report over many users."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from uscope.data.schema import validate_events
from uscope.profile import faithfulness as fa
from uscope.profile.faithfulness import (
    Claim,
    claims,
    consistency_score,
    contradictions,
    drop_contradicting,
    end_at_sentence,
    measure,
    split_sentences,
    vocabulary,
)
from uscope.profile.population import iter_features
from uscope.tuning import preferences

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def make_events(users: dict[str, list[tuple[str, str | None, str | None, str | None]]],
                timed: bool = True) -> pd.DataFrame:
    """{user: [(timestamp, app, category, place), ...]} -> validated event table."""
    rows = [(u, *r) for u, rs in users.items() for r in rs]
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "app", "app_category",
                                        "location_category"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]) if timed else pd.NaT
    return validate_events(frame)


POPULATION = {  # 2024-01-01 is a Monday
    "gamer": [("2024-01-01 01:00", "Arena", "Games", "Residence"),
              ("2024-01-01 02:00", "Arena", "Games", "Residence"),
              ("2024-01-02 12:00", "Chat", "Social", "Campus")],
    "reader": [("2024-01-01 07:00", "Daily", "News", "Metro"),
               ("2024-01-02 07:10", "Daily", "News", "Metro"),
               ("2024-01-02 07:20", "Mail", "Office", "Metro")],
    "weekender": [("2024-01-06 10:00", "Tube", "Video", "Home"),
                  ("2024-01-07 15:00", "Tube", "Video", "Home")],
    "visitor": [("2024-01-03 09:00", None, None, "Night Market"),
                ("2024-01-04 09:30", None, None, "Night Market"),
                ("2024-01-04 10:00", None, None, "Park")],
    # one morning event among 25: 4% of events
    "owl": [("2024-01-01 08:00", "Arena", "Games", "Residence")]
           + [(f"2024-01-{d:02d} 23:00", "Arena", "Games", "Residence") for d in range(1, 25)],
}


@pytest.fixture(scope="module")
def users():
    events = make_events(POPULATION)
    return {f.user_id: f for f in iter_features(events, [*POPULATION, "nobody"])}


@pytest.fixture(scope="module")
def names(users):
    return vocabulary(users.values())


def verdicts(text, f, names, **kw):
    return [(c.kind, c.text, c.sentence, c.refuted) for c in claims(text, f, names, **kw)]


def test_split_sentences_keeps_decimals_and_abbreviations():
    text = 'Scores 7.0 on average, e.g. news apps. "Busy!" Evenings (mostly.) Then? a fragment'
    assert split_sentences(text) == ["Scores 7.0 on average, e.g. news apps.", '"Busy!"',
                                     "Evenings (mostly.)", "Then?", "a fragment"]
    assert split_sentences("One. Two.") == ["One.", "Two."]
    assert split_sentences("") == [] and split_sentences(None) == []


def test_end_at_sentence_cuts_the_trailing_fragment():
    assert end_at_sentence("Uses Games at night. They also like Soc") == "Uses Games at night."
    assert end_at_sentence("  Done!  ") == "Done!"
    assert end_at_sentence("About 7.5 sessions a day, e.g. at home") is None
    assert end_at_sentence("") is None and end_at_sentence(None) is None


def test_name_claims_accept_used_names_and_refute_other_users(users, names):
    gamer = users["gamer"]
    assert verdicts("Plays Games at Residence and reads News.", gamer, names) == [
        ("name", "Games", 0, False), ("name", "News", 0, True), ("name", "Residence", 0, False)]
    refuted = contradictions("Reads News.", gamer, names)
    assert refuted == [Claim("name", "News", 0, True, "'News' is not in the user's history")]
    assert verdicts("Games. More games.", gamer, names) == [("name", "Games", 0, False),
                                                            ("name", "Games", 1, False)]


def test_time_claims_follow_pi_time(users, names):
    gamer, reader, weekender = users["gamer"], users["reader"], users["weekender"]
    assert contradictions("Busy mornings.", gamer, names) == [
        Claim("time", "morning", 0, True, "only 0.0% of events are in the morning (under 5%)")]
    assert verdicts("Busy mornings.", reader, names) == [("time", "morning", 0, False)]
    assert verdicts("Active late at night, overnight too.", gamer, names) == [
        ("time", "night", 0, False)]
    assert verdicts("Active in the evening.", gamer, names) == [("time", "evening", 0, True)]
    assert verdicts("Often on weekends.", gamer, names) == [("time", "weekend", 0, True)]
    assert verdicts("Often on weekends.", weekender, names) == [("time", "weekend", 0, False)]
    assert verdicts("Never on weekdays.", weekender, names) == [("time", "weekdays", 0, True)]
    assert verdicts("Mondays and Sundays.", gamer, names) == [("time", "Monday", 0, False),
                                                              ("time", "Sunday", 0, True)]
    assert verdicts("See you tonight in the afternoon.", gamer, names) == [
        ("time", "afternoon", 0, False)]
    owl = users["owl"]  # 1 of 25 events in the morning
    assert verdicts("Mornings.", owl, names) == [("time", "morning", 0, True)]
    assert verdicts("Mornings.", owl, names, min_share=0.03) == [("time", "morning", 0, False)]


def test_names_are_blanked_before_time_words(users, names):
    visitor = users["visitor"]
    assert verdicts("Visits Night Market in the morning.", visitor, names) == [
        ("name", "Night Market", 0, False), ("time", "morning", 0, False)]


def test_untimed_users_refute_every_time_claim():
    untimed = make_events({"gamer": POPULATION["gamer"]}, timed=False)
    (f,) = iter_features(untimed, ["gamer"])
    assert not f.timed
    text = "Plays Games at night, 67% of the time."
    assert [(c.kind, c.text, c.refuted, c.reason) for c in claims(text, f, set())] == [
        ("number", "67%", False, ""), ("name", "Games", False, ""),
        ("time", "night", True, "the data records no times")]


def test_percentages_must_match_a_stated_share(users, names):
    gamer = users["gamer"]  # Games 2/3, Social 1/3, Residence 2/3, Campus 1/3, weekend 0
    text = "Games 67%. Social 33 percent. Residence 66.5%. Campus 35%. Weekend 0%. Games 12%."
    assert [(c.text, c.sentence, c.refuted) for c in claims(text, gamer, names)
            if c.kind == "number"] == [("67%", 0, False), ("33%", 1, False),
                                       ("66.5%", 2, False), ("35%", 3, True), ("0%", 4, False),
                                       ("12%", 5, True)]
    assert contradictions("Games 12%.", gamer, set())[0].reason == \
        "no stated share is within 1 point of 12%"
    visitor = users["visitor"]  # location-only: Night Market 2/3, Park 1/3
    assert verdicts("Park 33%.", visitor, names) == [("number", "33%", 0, False),
                                                     ("name", "Park", 0, False)]
    nobody = users["nobody"]  # no events: no stated share at all
    assert contradictions("Half 50%.", nobody, names) == [
        Claim("number", "50%", 0, True, "the data states no shares")]


def test_drop_contradicting_removes_exactly_the_bad_sentence(users, names):
    text = ("This user mainly plays Games at Residence. They read News on weekends. "
            "Activity peaks at night.")
    assert drop_contradicting(text, users["gamer"], names) == (
        "This user mainly plays Games at Residence. Activity peaks at night.", 1)
    assert drop_contradicting("Games at night.", users["gamer"], names) == ("Games at night.", 0)
    assert drop_contradicting("News. Mornings.", users["gamer"], names) == ("", 2)


def test_measure_rates_on_a_hand_made_set(users, names):
    features = [users["gamer"], users["reader"], users["weekender"]]
    texts = ["Games and Social at Residence, at night.",
             "News at Metro in the mornings. 90% on weekends.",
             None]
    report = measure(texts, features)
    assert report.n_users == 3 and report.n_place_users == 3
    assert report.top1_category == pytest.approx(2 / 3)
    assert report.top3_categories == pytest.approx(0.5)
    assert report.top1_place == pytest.approx(2 / 3)
    assert (report.n_claims, report.n_refuted) == (9, 2)
    assert report.contradiction_rate == pytest.approx(1 / 3)
    assert report.claim_contradiction_rate == pytest.approx(2 / 9)
    assert report.refuted_by_kind == {"name": 0, "time": 1, "number": 1}
    assert report.mean_consistency == pytest.approx((1 + 2 / 3 + 0) / 3)
    # profiles swapped between users: every name is another user's
    swapped = measure(["News at Metro.", "Games at Residence."], features[:2], names=names)
    assert swapped.refuted_by_kind == {"name": 4, "time": 0, "number": 0}
    assert (swapped.contradiction_rate, swapped.mean_consistency) == (1.0, -1.0)
    empty = measure([None, ""], features[:2])
    assert empty.n_claims == 0 and empty.contradiction_rate == 0.0
    assert math.isnan(empty.claim_contradiction_rate)
    with pytest.raises(ValueError, match="2 texts for 3 users"):
        measure(texts[:2], features)


def test_consistency_score_moved_with_its_helpers(users, names):
    for name in ("mentioned", "used_names", "evidence_names", "vocabulary", "consistency_score"):
        assert getattr(preferences, name) is getattr(fa, name)  # one definition, re-exported
    gamer = users["gamer"]
    assert consistency_score("Games, Social at Residence.", gamer, names) == 1.0
    assert consistency_score("Games and News.", gamer, names) == pytest.approx(1 / 3 - 1 / 2)
