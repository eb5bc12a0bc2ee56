"""Novelty recommendation API: behaviour with the real encoder, edge cases, metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from uscope.data import DataError, novelty_split, validate_events
from uscope.profile import profile_users
from uscope.recommend import NeighboursStrategy, Recommender
from uscope.recommend.evaluate import EvalConfig, evaluate_recommendations
from uscope.recommend.metrics import mrr_at, ndcg_at, ranking_metrics, recall_at


def test_metrics_by_hand():
    ranked, relevant = ["a", "b", "c", "d"], {"b", "d", "z"}
    assert recall_at(ranked, relevant, 1) == 0 and recall_at(ranked, relevant, 4) == 2 / 3
    assert math.isclose(ndcg_at(ranked, relevant, 4),
                        (1 / math.log2(3) + 1 / math.log2(5))
                        / (1 + 1 / math.log2(3) + 1 / math.log2(4)))
    assert mrr_at(ranked, relevant, 1) == 0 and mrr_at(ranked, relevant, 3) == 0.5
    assert ranking_metrics(["b"], {"b"})["accuracy"] == 1.0
    with pytest.raises(ValueError):
        recall_at(ranked, set(), 1)


@pytest.fixture(scope="module")
def population(simulated):
    """SIMULATED users with heuristic profiles embedded by the real MiniLM encoder."""
    profiles = profile_users(simulated.events, backend="heuristic")
    return simulated.events, profiles


def test_novel_only_and_catalogue_bounds(population):
    events, profiles = population
    rec = Recommender(profiles, events)
    user = profiles.user_ids[0]
    mine = set(events.loc[events["user_id"] == user, "app"])
    items = rec.recommend(user, kind="app", k=5, explain=True)
    assert len(items) == 5 and not {i.item for i in items} & mine
    assert all(i.rationale and "similar profiles" in i.rationale for i in items)
    assert [i.score for i in items] == sorted((i.score for i in items), reverse=True)
    catalogue = set(events["app"])
    everything = rec.recommend(user, kind="app", k=10_000)
    assert {i.item for i in everything} == catalogue - mine  # fewer than k, never padding
    with_used = rec.recommend(user, kind="app", k=10_000, novel_only=False)
    assert {i.item for i in with_used} == catalogue


def test_kinds_and_bad_input(population, netfp_events):
    events, profiles = population
    rec = Recommender(profiles, events, "popular")
    user = profiles.user_ids[1]
    places = rec.recommend(user, kind="location", k=3)
    assert {i.item for i in places} <= set(events["location_category"])
    intents = rec.recommend(user, kind="intent", k=3)
    assert {i.item for i in intents} <= set(events["app_category"])
    with pytest.raises(ValueError, match="unknown kind"):
        rec.recommend(user, kind="song")
    with pytest.raises(KeyError, match="not in the profile set"):
        rec.recommend("nobody", kind="app")
    with pytest.raises(ValueError, match="k must be"):
        rec.recommend(user, k=0)
    with pytest.raises(ValueError, match="unknown strategy"):
        Recommender(profiles, events, "magic")
    with pytest.raises(ValueError, match="context keys"):
        rec.recommend(user, context={"weather": "rain"})
    netfp, _ = netfp_events
    few = netfp[netfp["user_id"].isin(sorted(netfp["user_id"].unique())[:5])]
    netfp_rec = Recommender(profile_users(few), few, "popular")
    with pytest.raises(DataError, match="no 'location' items"):
        netfp_rec.recommend(netfp_rec.index.user_ids[0], kind="location")


def test_unseen_and_empty_history(population):
    events, profiles = population
    rec = Recommender(profiles, events)
    user = profiles.user_ids[2]
    history = events[events["user_id"] == user].copy()
    history["user_id"] = "someone new"
    fresh = rec.recommend(history, kind="app", k=5)
    assert not {i.item for i in fresh} & set(history["app"])
    cold = rec.recommend(events.iloc[:0], kind="app", k=3)  # nothing known: a cold start
    assert len(cold) == 3
    with pytest.raises(ValueError, match="one user's events"):
        rec.recommend(events.iloc[:5000], kind="app")


def test_neighbours_follow_the_profile():
    """Two groups of users with different habits: a newcomer who looks like group A gets
    group A's app, not the globally more popular app of group B."""
    rows = []
    for u in range(6):  # group A: gamers at night, who also use "arcade"
        for h in range(20, 24):
            rows.append((f"a{u}", f"2024-01-0{1 + h % 3} {h}:10", "blaster", "Games"))
        rows.append((f"a{u}", "2024-01-01 23:30", "arcade", "Games"))
    for u in range(10):  # group B: office users, who all use "mailer"
        for h in range(9, 13):
            rows.append((f"b{u}", f"2024-01-0{1 + h % 3} {h}:10", "sheets", "Business"))
        rows.append((f"b{u}", "2024-01-01 10:30", "mailer", "Business"))
    events = validate_events(pd.DataFrame(rows, columns=["user_id", "timestamp", "app",
                                                         "app_category"]))
    rec = Recommender(profile_users(events), events, "neighbours", n_neighbours=5, profile_weight=1.0,
                      combine="shrink")  # the profile embedding alone, additive vote (eq. N2)
    newcomer = events[events["user_id"] == "a0"].query("app == 'blaster'").assign(user_id="n")
    top = rec.recommend(newcomer, kind="app", k=1)[0].item
    assert top == "arcade"
    popular = Recommender(rec.profiles, events, "popular").recommend(newcomer, k=1)[0].item
    assert popular == "mailer"


def test_novelty_protocol_has_no_leak_and_runs(population):
    events, _ = population
    cutoff = events["timestamp"].min() + (events["timestamp"].max()
                                          - events["timestamp"].min()) * 0.5
    history, targets = novelty_split(events, "app", cutoff)
    assert history["timestamp"].max() < cutoff
    for user, items in targets.items():
        assert not items & set(history.loc[history["user_id"] == user, "app"])
    results = evaluate_recommendations(events, EvalConfig(kind="app", seeds=(0, 1), cutoff=0.5))
    assert set(results["strategy"]) == {"popular", "neighbours"} and len(results) == 4
    assert results["Recall@5"].between(0, 1).all() and (results["Recall@5"] > 0).any()


def test_coldstart_protocol_on_simulated(population):
    events, _ = population
    config = EvalConfig(protocol="coldstart", seeds=(0,), holdout_fraction=0.3)
    results = evaluate_recommendations(events, config)
    assert len(results) == 2 and (results["users"] == 4).all()
    assert (results["Recall@5"] > 0).all()


def _two_usage_groups() -> pd.DataFrame:
    """Both groups keep the same hours and categories, so their heuristic profiles barely
    differ; only the apps tell them apart. Group A (4 users) share the rare "sparkle" and all
    use "niche"; group B (10 users) all use the popular "mailer"."""
    rows = []
    for u in range(4):
        for h in (9, 10, 11):
            rows.append((f"a{u}", f"2024-01-01 {h}:10", "chat", "Social"))
        rows += [(f"a{u}", "2024-01-01 12:10", "sparkle", "Social"),
                 (f"a{u}", "2024-01-01 12:40", "niche", "Social")]
    for u in range(10):
        for h in (9, 10, 11):
            rows.append((f"b{u}", f"2024-01-01 {h}:10", "chat", "Social"))
        rows += [(f"b{u}", "2024-01-01 12:10", "mailer", "Social"),
                 (f"b{u}", "2024-01-01 12:40", f"own{u}", "Social")]
    return validate_events(pd.DataFrame(rows, columns=["user_id", "timestamp", "app",
                                                       "app_category"]))


def test_usage_similarity_finds_the_usage_neighbours():
    """eq. N1 with profile_weight=0: a newcomer who uses the rare app of group A is matched to
    group A by usage and gets their "niche"; popularity gives the majority's "mailer"."""
    events = _two_usage_groups()
    profiles = profile_users(events)
    newcomer = pd.DataFrame({"user_id": "n", "timestamp": pd.to_datetime(
        ["2024-01-01 09:10", "2024-01-01 12:10"]), "app": ["chat", "sparkle"],
        "app_category": "Social"})
    usage = Recommender(profiles, events, "neighbours", n_neighbours=4, kappa=1.0, profile_weight=0.0)
    assert usage.recommend(newcomer, kind="app", k=1)[0].item == "niche"
    # eq. N1 by hand: "chat" (used by all) has idf 0, so only "sparkle" counts; a group-A user
    # (sparkle, niche, equal idf) is at cosine 1/sqrt(2), a group-B user at 0
    batch = usage.index.batch([usage._query(newcomer, None)], "app")
    similarity = usage.strategy.similarity(usage.index, batch, "app")[0]
    group_a = np.array([u.startswith("a") for u in usage.index.user_ids])
    assert np.allclose(similarity[group_a], 1 / math.sqrt(2))
    assert np.allclose(similarity[~group_a], 0.0)
    assert usage.recommend("a1", kind="app", k=1)[0].item == "mailer"  # a1 already used niche
    popular = Recommender(profiles, events, "popular")
    assert popular.recommend(newcomer, kind="app", k=1)[0].item == "mailer"
    lift = Recommender(profiles, events, "neighbours", n_neighbours=4, kappa=1.0, profile_weight=0.0,
                       combine="lift", beta=1.0)
    assert lift.recommend(newcomer, kind="app", k=1)[0].item == "niche"
    # beta = 0 in eq. N3 is the popularity ranking, whatever the neighbours say
    flat = Recommender(profiles, events, "neighbours", n_neighbours=4, kappa=1.0, profile_weight=0.0,
                       combine="lift", beta=0.0)
    assert ([r.item for r in flat.recommend(newcomer, k=5)]
            == [r.item for r in popular.recommend(newcomer, k=5)])


@pytest.mark.parametrize("options, message", [
    ({"profile_weight": 1.5}, "profile_weight"), ({"profile_weight": -0.1}, "profile_weight"),
    ({"combine": "product"}, "combine"), ({"beta": -1.0}, "beta"),
    ({"n_neighbours": 0}, "n_neighbours")])
def test_neighbours_options_are_validated(options, message):
    with pytest.raises(ValueError, match=message):
        NeighboursStrategy(**options)
