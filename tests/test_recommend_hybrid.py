"""The hybrid strategy (eq. H1-H3), the batch API, context and save/load of a fitted
recommender, with the real MiniLM encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uscope.data import validate_events
from uscope.profile import profile_users
from uscope.recommend import Recommender
from uscope.recommend.hybrid import HybridStrategy, standardise
from uscope.recommend.recommender import ALL_STRATEGIES, top_k
from uscope.recommend.strategies import QueryBatch


def _groups() -> pd.DataFrame:
    """Two groups of users, each with its own apps; group A also uses "shared". Every event
    carries a Frappe-style context: group A in the morning, group B in the evening."""
    rows = []
    for group, apps, daytime in (("a", ["a1", "a2", "a3", "a4"], "morning"),
                                 ("b", ["b1", "b2", "b3", "b4", "b5"], "evening")):
        for u in range(8):
            for j, app in enumerate(apps):
                if (u + j) % 4 != 3:  # each user misses some of the group's apps
                    rows.append((f"{group}{u}", f"2024-01-0{1 + j % 3} {9 + j}:00", app,
                                 "Tools" if group == "a" else "Games",
                                 f"daytime={daytime};homework=home"))
    return validate_events(pd.DataFrame(rows, columns=["user_id", "timestamp", "app",
                                                       "app_category", "context"]))


@pytest.fixture(scope="module")
def groups():
    events = _groups()
    return events, profile_users(events)


def test_standardise_rows():
    rows = standardise(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    assert np.allclose(rows[0].mean(), 0) and np.isclose(rows[0].std(), 1)
    assert np.all(rows[1] == 0)  # a constant row carries no ranking
    used = np.array([[False, False, True, False]])  # the used item takes no part
    row = standardise(np.array([[1.0, 3.0, 100.0, 2.0]]), used)[0]
    assert np.allclose(row[[0, 1, 3]], standardise(np.array([[1.0, 3.0, 2.0]]))[0])


def test_history_length_weight_eq_h1_h2(groups):
    """w(n) = n / (n + tau): an empty history is the semantic part alone, tau = 0 with any
    history the collaborative part alone, and the blend lies between them."""
    events, profiles = groups
    rec = Recommender(profiles, events, HybridStrategy("ease", tau=2.0, gamma=0.0))
    hybrid, index = rec.strategy, rec.index
    rows = index.rows_of(["a0", "b1"])
    usage = index.matrix("app").counts[rows]
    batch = QueryBatch(rows, usage, index.embeddings[rows])
    n = np.asarray((usage > 0).sum(axis=1)).ravel()
    assert np.allclose(hybrid.weight(batch).ravel(), n / (n + 2.0))
    used = (usage > 0).toarray()
    semantic = standardise(hybrid.semantic.score_batch(index, batch, "app"), used)
    collaborative = standardise(hybrid.collaborative.score_batch(index, batch, "app"), used)
    w = hybrid.weight(batch)
    assert np.allclose(hybrid.score_batch(index, batch, "app"),
                       w * collaborative + (1 - w) * semantic)
    empty = QueryBatch(rows, usage.multiply(0).tocsr(), index.embeddings[rows])
    assert np.allclose(hybrid.score_batch(index, empty, "app"),
                       standardise(hybrid.semantic.score_batch(index, empty, "app")))
    only_cf = HybridStrategy(hybrid.collaborative, tau=0.0, gamma=0.0)
    assert np.allclose(only_cf.score_batch(index, batch, "app"), collaborative)
    with pytest.raises(ValueError, match="tau"):
        HybridStrategy(tau=-1.0)
    with pytest.raises(ValueError, match="collaborative must be one of"):
        HybridStrategy("svd")


def test_hybrid_finds_the_group_apps(groups):
    events, profiles = groups
    small = {"factors": 8, "regularization": 0.1}  # the default (20) suits hundreds of users
    rec = Recommender(profiles, events, "hybrid", collaborative_options=small)
    mine = set(events.loc[events["user_id"] == "a3", "app"])
    top = [r.item for r in rec.recommend("a3", kind="app", k=len({"a1", "a2", "a3", "a4"} - mine))]
    assert set(top) == {"a1", "a2", "a3", "a4"} - mine  # the own group's unused apps first
    explained = rec.recommend("a3", kind="app", k=1, explain=True)[0]
    assert "similar usage adopted (als)" in explained.rationale


def test_context_lift_eq_h3(groups):
    """In the evening context the evening group's apps rise for a user of neither group; gamma
    = 0 ignores the context; unknown keys name what the data records."""
    events, profiles = groups
    newcomer = events[events["user_id"] == "a0"].head(1).assign(user_id="new")
    rec = Recommender(profiles, events, HybridStrategy("ease", tau=2.0, gamma=2.0))
    plain = [r.item for r in rec.recommend(newcomer, k=9)]
    evening = [r.item for r in rec.recommend(newcomer, k=9, context={"daytime": "evening"})]
    rank = {item: evening.index(item) - plain.index(item) for item in plain}
    assert all(rank[item] <= 0 for item in plain if item.startswith("b"))
    query = rec._query(newcomer, {"daytime": "evening"})
    batch = rec.index.batch([query], "app")
    lift = rec.strategy.context_lift(rec.index, batch, "app")
    items = rec.index.matrix("app").items
    assert all((lift[i] > 0) == item.startswith("b") for i, item in enumerate(items))
    without = rec.index.batch([rec._query(newcomer, None)], "app")
    assert np.allclose(rec.strategy.score_batch(rec.index, batch, "app")
                       - rec.strategy.score_batch(rec.index, without, "app"), 2.0 * lift)
    flat = Recommender(profiles, events, HybridStrategy("ease", tau=2.0, gamma=0.0))
    assert ([r.item for r in flat.recommend(newcomer, k=9, context={"daytime": "evening"})]
            == [r.item for r in flat.recommend(newcomer, k=9)])
    with pytest.raises(ValueError, match=r"unknown context keys \['weather'\].*daytime"):
        rec.recommend("a0", context={"weather": "rain"})
    assert rec.recommend("a0", context={"weekday": "monday", "hour": 10})  # timed events
    with pytest.raises(ValueError, match=r"daytime='dusk' is never seen.*evening"):
        rec.recommend("a0", context={"daytime": "dusk"})


@pytest.mark.parametrize("strategy", sorted(ALL_STRATEGIES))
def test_recommend_batch_equals_recommend(groups, strategy):
    events, profiles = groups
    options = {"als": {"regularization": 0.1, "factors": 8},
               "bpr": {"factors": 8}}.get(strategy, {})
    rec = Recommender(profiles, events, strategy, **options)
    users = ["a0", "b3", "a5", "b7"]
    batch = rec.recommend_batch(users, kind="app", k=4)
    for user in users:
        single = rec.recommend(user, kind="app", k=4)
        assert np.allclose([r.score for r in batch[user]], [r.score for r in single], atol=1e-6)
        for a, b in zip(batch[user], single, strict=True):  # the same items, up to float ties
            assert a.item == b.item or abs(a.score - b.score) < 1e-6
    with pytest.raises(KeyError, match="not in the profile set"):
        rec.recommend_batch(["nobody"])


def test_top_k_ties_and_used():
    scores = np.array([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, 2.0, 2.0]])
    used = np.array([[False, False, False, True], [True, True, True, False]])
    first, second = top_k(scores, 3, used)
    assert first.tolist() == [1, 2, 0]  # ties by column (= item name) order
    assert second.tolist() == [3]  # fewer than k when the rest is used


def test_fit_save_load_round_trip(groups, tmp_path):
    events, _ = groups
    rec = Recommender.fit(events, strategy="hybrid", kinds=("app",))
    assert rec.strategy.collaborative._fitted  # fitted before the first request
    before = rec.recommend_batch(["a1", "b2"], k=3)
    path = rec.save(tmp_path / "rec.pkl")
    loaded = Recommender.load(path)
    assert loaded.recommend_batch(["a1", "b2"], k=3) == before
    newcomer = events[events["user_id"] == "b0"].assign(user_id="new")
    assert [r.item for r in loaded.recommend(newcomer, k=3)] == \
        [r.item for r in rec.recommend(newcomer, k=3)]
    (tmp_path / "other.pkl").write_bytes(b"\x80\x04N.")  # a pickled None
    with pytest.raises(ValueError, match="not a recommender saved by uscope"):
        Recommender.load(tmp_path / "other.pkl")


def test_loaded_recommender_embeds_new_users_at_its_profiles_precision(groups, tmp_path):
    """The catalogue's encoder label decides the precision of a newcomer's embedding, not the
    loading machine's default; profiles of mixed precisions are refused."""
    from uscope.data import DataError
    from uscope.profile import ProfileSet

    events, profiles = groups
    for label, precision in (("all-MiniLM-L6-v2@bf16", "bf16"), ("all-MiniLM-L6-v2", "fp32")):
        tagged = ProfileSet(profiles.frame.assign(encoder=label))
        saved = Recommender(tagged, events).save(tmp_path / f"{precision}.pkl")
        loaded = Recommender.load(saved)
        assert loaded.encoder.precision == precision
        assert loaded.encoder.label == label
    mixed = profiles.frame.assign(encoder=["m@bf16"] + ["m"] * (len(profiles.frame) - 1))
    with pytest.raises(DataError, match="several precisions"):
        _ = Recommender(ProfileSet(mixed), events).encoder


def test_run_evaluation_validation_and_test_users(groups):
    """Validation and test users never overlap; every strategy is scored on the same users;
    per-user rows feed the paired differences; profiles given for a seeded protocol refuse."""
    from uscope.recommend.evaluate import EvalConfig, run_evaluation

    events, profiles = groups
    evaluated = {}
    for users in ("validation", "test"):
        config = EvalConfig(kind="app", protocol="leave-out", seeds=(0, 1), users=users,
                            strategies=("popular", "ease", "hybrid"))
        evaluation = run_evaluation(events, config)
        evaluated[users] = set(evaluation.per_user["user_id"])
        assert set(evaluation.results["strategy"]) == {"popular", "ease", "hybrid"}
        counts = evaluation.per_user.groupby(["seed", "strategy"]).size().unstack()
        assert (counts.nunique(axis=1) == 1).all()  # the same users for every strategy
        paired = evaluation.paired("popular", "Recall@10")
        assert set(paired["strategy"]) == {"ease", "hybrid"}
        assert (paired["low"] <= paired["mean"]).all() and (paired["mean"] <= paired["high"]).all()
        assert {"coverage@10", "popularity@10"} <= set(evaluation.results)
    assert evaluated["validation"] and evaluated["test"]
    assert not evaluated["validation"] & evaluated["test"]
    with pytest.raises(ValueError, match="written per seed"):
        run_evaluation(events, EvalConfig(protocol="leave-out"), profiles=profiles)
    with pytest.raises(ValueError, match="at least one seed"):
        EvalConfig(seeds=())


def test_evaluation_with_none_of_its_users_profiled_says_so(groups):
    from uscope.data.schema import DataError
    from uscope.recommend.evaluate import EvalConfig, make_split, run_evaluation

    events, _ = groups
    config = EvalConfig(kind="app", protocol="novelty", strategies=("popular",), max_users=2)
    split = make_split(events, config, 0)
    others = sorted(set(events["user_id"].astype(str)) - set(split.users[:2]))
    profiles = profile_users(split.visible, users=others)  # every user but the evaluated ones
    with pytest.raises(DataError, match="no user of the novelty split has a profile"):
        run_evaluation(events, config, profiles=profiles)
    evaluated = run_evaluation(events, config, profiles=profile_users(split.visible))
    assert set(evaluated.results["users"]) == {2}  # one row per seed
