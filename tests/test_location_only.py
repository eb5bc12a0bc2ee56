"""Users without apps (check-ins, GPS fixes) and untimed users through every stage.

Location-only users come from two sources: the SIMULATED population with its apps removed
(app and app_category set to null: the events become place observations), and the real
Foursquare NYC check-ins (``uscope.data.datasets.load_dataset("foursquare-nyc")``, 124 people,
no app at all). Each gets a profile (heuristic writer), a behaviour tensor and
recommendations of places and place categories, and no app appears anywhere.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from generative.intent.data import HONOR, MOBILE, IntentVocab, build_sequences, intent_setting
from uscope.data import DataError, TensorConfig, build_tensors, novelty_split, validate_events
from uscope.data.items import UsageMatrix, intent_column, item_column
from uscope.data.schema import has_apps
from uscope.profile import profile_users
from uscope.profile.backends.heuristic import heuristic_profile
from uscope.profile.features import user_features
from uscope.profile.population import iter_features
from uscope.profile.prompting import load_template
from uscope.profile.quality import category_usage, faithfulness
from uscope.recommend import Recommender
from uscope.recommend.evaluate import EvalConfig, evaluate_recommendations, location_only

pytestmark = pytest.mark.usefixtures("torch_one_thread")

APP_WORD = re.compile(r"\bapps?\b", re.IGNORECASE)


def without_apps(events: pd.DataFrame) -> pd.DataFrame:
    """The same events as place observations: app, app_category and traffic (of the app use)
    null."""
    return validate_events(events.assign(app=None, app_category=None, traffic_bytes=None),
                           source="<no apps>")


def assert_no_app(text: str) -> None:
    assert not APP_WORD.search(text), text
    assert "Unknown" not in text, text


@pytest.fixture(scope="module")
def sim_places(simulated):
    """SIMULATED users, every app removed."""
    return without_apps(simulated.events)


@pytest.fixture(scope="module")
def foursquare(shared_data):
    """Real Foursquare NYC check-ins of the first 24 users (by id)."""
    from uscope.data.datasets import load_dataset

    events = load_dataset("foursquare-nyc").events
    users = sorted(events["user_id"].unique())[:24]
    return events[events["user_id"].isin(users)].reset_index(drop=True)


def test_app_less_events_stay_app_less_and_intents_are_place_categories(sim_places):
    assert sim_places["app"].isna().all() and sim_places["app_category"].isna().all()
    assert not has_apps(sim_places)
    assert intent_column(sim_places) == item_column("intent", sim_places) == "location_category"
    assert item_column("place") == "location_id"
    usage = UsageMatrix.build(sim_places, "intent")
    assert set(usage.items) == set(sim_places["location_category"].dropna())
    with pytest.raises(DataError, match="'app'") as err:
        UsageMatrix.build(sim_places, "app")
    assert err.value.field == "app"


@pytest.mark.parametrize("source", ["sim_places", "foursquare"])
def test_location_only_profiles_name_places_and_no_app(source, request):
    events = request.getfixturevalue(source)
    users = sorted(events["user_id"].unique())
    features = list(iter_features(events, users))
    texts = [heuristic_profile(f) for f in features]
    for f, text in zip(features, texts):
        assert not f.uses_apps and f.C_u.shape == (0, 0) and f.top_apps == []
        assert f.top_categories == [] and f.category_shares == {}
        assert f.top_intents and f.top_intents[0][0] in set(events["location_category"])
        assert f.main_place in set(events["location_id"])  # a venue / base station
        assert_no_app(text)
        assert "Activity peaks" in text  # timed: active hours are stated
        for name in ("profile_v1", "profile_v2"):
            prompt = load_template(name).render(f).user
            assert_no_app(prompt)
            assert f'"{f.top_intents[0][0]}"' in prompt and f'"{f.main_place}"' in prompt
    result = faithfulness(texts, features)
    assert result.top1_category == 1.0 and result.top1_place == 1.0
    assert result.n_location_only == len(users)
    usage, names = category_usage(features)
    assert set(names) <= set(events["location_category"]) and usage.sum() > 0


def test_mixed_users_keep_app_less_events_out_of_c_u(simulated):
    events = simulated.events
    user = events["user_id"].iloc[0]
    mine = events[events["user_id"] == user].reset_index(drop=True)
    half = mine.copy()
    half.loc[half.index % 2 == 1, ["app", "app_category"]] = None  # every other event: a visit
    f = user_features(user, validate_events(half))
    assert f.uses_apps and f.n_app_uses == int(half["app"].notna().sum())
    assert f.C_u.sum() == f.n_app_uses and f.n_visits == len(half)
    assert sum(f.category_shares.values()) == pytest.approx(1.0)
    assert "Unknown" not in f.app_categories


def test_tensors_have_visit_channels_and_never_an_app_channel(sim_places, simulated):
    config = TensorConfig(slot_minutes=60, n_slots=72)
    batch = build_tensors(sim_places, config)
    assert not any(name.startswith("app:") for name in batch.channel_names)
    assert set(batch.channel_groups) == {"visit", "location"}
    raw = batch.denormalize(batch.values)
    want = sim_places.groupby(["user_id", "location_category"]).size()
    for (user, category), count in want.items():
        c = batch.channel_names.index(f"visit:{category}")
        assert round(float(raw[batch.user_ids.index(user), c].sum())) == count
    # mixed data: events without an app enter no app channel (none lands in the last one)
    events = simulated.events.copy()
    app_less = events["user_id"].isin(sorted(events["user_id"].unique())[:7])
    events.loc[app_less, ["app", "app_category"]] = None
    mixed = build_tensors(validate_events(events), config)
    raw = mixed.denormalize(mixed.values)
    app_channels = mixed.channel_groups["app"]
    for i, user in enumerate(mixed.user_ids):
        uses = int(events.loc[events["user_id"] == user, "app"].notna().sum())
        assert round(float(raw[i, app_channels].sum())) == uses


def test_real_foursquare_tensor_is_ten_category_visit_counts(foursquare):
    batch = build_tensors(foursquare, TensorConfig(slot_minutes=180, n_slots=8 * 7 * 4,
                                                   spatial="latlon", grid=(4, 4)))
    assert batch.channel_groups["visit"] == list(range(10)) and "app" not in batch.channel_groups
    assert batch.channel_names[-1] == "presence"
    raw = batch.denormalize(batch.values)
    start = pd.Timestamp(batch.start)
    inside = foursquare["timestamp"] < start + pd.Timedelta(hours=3 * 8 * 7 * 4)
    assert round(float(raw[:, :10].sum())) == int(inside.sum())


@pytest.mark.parametrize("source", ["sim_places", "foursquare"])
def test_recommend_places_and_categories_and_refuse_apps(source, request):
    events = request.getfixturevalue(source)
    profiles = profile_users(events, backend="heuristic")
    assert all(not APP_WORD.search(t) for t in profiles.frame["profile"])
    user = profiles.user_ids[0]
    mine = events[events["user_id"] == user]
    for strategy in ("popular", "neighbours"):
        rec = Recommender(profiles, events, strategy)
        for kind, column in (("place", "location_id"), ("location", "location_category"),
                             ("intent", "location_category")):
            items = [r.item for r in rec.recommend(user, kind=kind, k=5)]
            assert items and set(items) <= set(events[column].dropna())
            assert not set(items) & set(mine[column].dropna())  # novel only
        with pytest.raises(DataError, match="no event has one") as err:
            rec.recommend(user, kind="app")
        assert err.value.field == "app"


def test_evaluation_harness_on_places_and_coldstart_hides_apps_as_null(foursquare, sim_places,
                                                                        simulated):
    for kind in ("place", "location"):  # real check-ins: new venues and categories over weeks
        result = evaluate_recommendations(foursquare, EvalConfig(kind=kind, seeds=(0,),
                                                                 cutoff="2012-05-14"))
        assert set(result["strategy"]) == {"popular", "neighbours"} and result["users"].min() > 0
        assert result["Recall@5"].between(0, 1).all()
    with pytest.raises(DataError, match="'app'"):
        evaluate_recommendations(sim_places, EvalConfig(kind="app", protocol="coldstart"))
    hidden = location_only(simulated.events)
    assert hidden["app"].isna().all() and hidden["app_category"].isna().all()
    assert hidden["traffic_bytes"].isna().all()
    assert len(hidden) == int(simulated.events["location_id"].notna().sum())


def test_intent_setting_follows_the_intent_rule(sim_places, simulated):
    assert intent_setting(sim_places) == MOBILE and intent_setting(simulated.events) == HONOR
    vocab = IntentVocab.fit(sim_places, MOBILE)
    assert set(vocab.intents) == set(sim_places["location_category"].dropna())
    # under HONOR, place observations of a mixed table are no behaviours (dropped, not apps)
    events = simulated.events.copy()
    events.loc[events.index % 3 == 0, ["app", "app_category"]] = None
    seqs = build_sequences(events, HONOR, IntentVocab.fit(events, HONOR))
    assert len(seqs.event) <= int(events["app"].notna().sum())
    with pytest.raises(DataError, match="no row has .app."):
        IntentVocab.fit(sim_places, HONOR)


def test_untimed_events_get_no_time_sentences_and_time_stages_refuse(simulated):
    events = validate_events(simulated.events.assign(timestamp=pd.NaT), source="<untimed>")
    user = events["user_id"].iloc[0]
    f = user_features(user, events[events["user_id"] == user])
    assert not f.timed and f.pi_time.sum() == 0 and f.first_seen is None
    text = heuristic_profile(f)
    assert "mainly uses" in text
    assert not re.search(r"peaks|busiest|weekend|sessions|routine", text), text
    for name in ("profile_v1", "profile_v2"):
        prompt = load_template(name).render(f).user
        assert not re.search(r"Busiest|weekend|Sessions|day\(s\)", prompt), prompt
    for stage in (lambda: build_tensors(events), lambda: novelty_split(events, "app", 0.5),
                  lambda: IntentVocab.fit(events, HONOR)):
        with pytest.raises(DataError, match="needs event times") as err:
            stage()
        assert err.value.field == "timestamp"


def test_uses_weight_every_count():
    frame = validate_events(pd.DataFrame({
        "user_id": ["a", "a", "b"], "timestamp": pd.to_datetime(["2024-01-01 08:00"] * 3),
        "app": ["x", "y", "x"], "app_category": ["Games", "News", "Games"],
        "uses": pd.array([5, None, 2], dtype="Int64")}))
    usage = UsageMatrix.build(frame, "app")
    assert usage.counts.toarray().tolist() == [[5.0, 1.0], [2.0, 0.0]]
    f = user_features("a", frame[frame["user_id"] == "a"])
    assert f.top_apps == [("x", 5), ("y", 1)] and f.n_app_uses == 6
    raw = build_tensors(frame, TensorConfig(n_slots=96)).denormalize
    batch = build_tensors(frame, TensorConfig(n_slots=96))
    assert np.allclose(raw(batch.values)[0, 0].sum(), 5.0)


def test_real_studentlife_mixes_app_users_and_gps_only_users(shared_data):
    """Real StudentLife: 2 students with apps and GPS, 31 with GPS alone (cold-start users)."""
    from uscope.data.datasets import load_dataset

    events = load_dataset("studentlife").events
    apps_of = events.groupby("user_id")["app"].apply(lambda s: int(s.notna().sum()))
    app_users = sorted(apps_of[apps_of > 0].index)
    gps_users = sorted(apps_of[apps_of == 0].index)[:4]
    mine = events[events["user_id"].isin(app_users + gps_users)].reset_index(drop=True)
    for f in iter_features(mine, app_users + gps_users):
        text = heuristic_profile(f)
        if f.user_id in gps_users:
            assert not f.uses_apps and f.main_place in set(mine["location_id"])
            assert_no_app(text)
        else:
            assert f.uses_apps and f.n_app_uses == apps_of[f.user_id] and "apps" in text
    # app uses have no place here and GPS places no category: one cell, apps and presence
    batch = build_tensors(mine, TensorConfig(slot_minutes=60, n_slots=24 * 7))
    assert batch.cell_names == ["anywhere"] and batch.channel_names[-1] == "presence"
    raw = batch.denormalize(batch.values)
    week = mine["timestamp"] < pd.Timestamp(batch.start) + pd.Timedelta(days=7)
    for i, user in enumerate(batch.user_ids):
        own = week & (mine["user_id"] == user)
        uses = int((mine["app"].notna() & own).sum())
        assert round(float(raw[i, batch.channel_groups["app"]].sum())) == uses
        seen = mine.loc[own & mine["location_id"].notna(), "timestamp"].dt.floor("h").nunique()
        assert round(float(raw[i, batch.channel_groups["location"]].sum())) == seen
    with pytest.raises(DataError, match="coordinates on every event"):
        build_tensors(mine, TensorConfig(spatial="latlon"))  # an app use has no coordinates


def test_real_frappe_is_untimed_and_weighted_by_uses(shared_data):
    """Real Frappe: context buckets, no times; ``uses`` = how often an app was used there."""
    from uscope.data.datasets import load_dataset

    events = load_dataset("frappe").events
    users = sorted(events["user_id"].unique())[:20]
    events = events[events["user_id"].isin(users)].reset_index(drop=True)
    for f in iter_features(events, users):
        assert not f.timed and f.uses_apps
        own = events[events["user_id"] == f.user_id]
        assert f.n_app_uses == int(own["uses"].fillna(1).sum())
        assert not re.search(r"peaks|busiest|weekend|sessions", heuristic_profile(f))
    with pytest.raises(DataError, match="needs event times"):
        build_tensors(events)
    with pytest.raises(DataError, match="needs event times"):
        novelty_split(events, "app", 0.5)
    rec = Recommender(profile_users(events), events, "popular")
    assert rec.recommend(users[0], kind="app", k=3)


def test_prompts_call_place_category_intents_kinds_of_place():
    from uscope.tuning.llm_task import item_noun, recommendation_prompt

    assert item_noun("intent", "app_category") == "kind of app"
    assert item_noun("intent", "location_category") == "kind of place"
    text = recommendation_prompt("A commuter.", {"Food"}, "intent", ["Residence", "Event"],
                                 column="location_category")
    assert "kind of place" in text and "kind of app" not in text
