"""Collaborative-filtering anchors: closed forms, block structure, batching, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from uscope.data import validate_events
from uscope.recommend.collaborative import (
    ANCHORS,
    ALSStrategy,
    BPRStrategy,
    EASEStrategy,
    ItemKNNStrategy,
    UserKNNStrategy,
)
from uscope.recommend.strategies import CatalogueIndex, Query, QueryBatch


def make_events(usage: dict[str, list[str]]) -> pd.DataFrame:
    """One app event per (user, item), at distinct minutes."""
    rows = [(user, pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=i), app, "Tools")
            for user, apps in usage.items() for i, app in enumerate(apps)]
    return validate_events(pd.DataFrame(rows, columns=["user_id", "timestamp", "app",
                                                       "app_category"]))


def make_index(events: pd.DataFrame, seed: int = 0) -> CatalogueIndex:
    users = sorted(events["user_id"].unique().tolist())
    embeddings = np.random.default_rng(seed).normal(size=(len(users), 8))
    return CatalogueIndex(users, embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True),
                          events)


def query_of(index: CatalogueIndex, user: str | None, history: pd.DataFrame) -> Query:
    return Query(user, np.eye(index.embeddings.shape[1])[0], history)


def small_anchors() -> list:
    """Every anchor, sized for a tiny catalogue."""
    return [ItemKNNStrategy(n_neighbours=5, shrink=1.0), ItemKNNStrategy(weighting="log1p"),
            UserKNNStrategy(n_neighbours=5), EASEStrategy(l2=1.0),
            ALSStrategy(factors=4, iterations=20, regularization=0.05, alpha=5.0),
            BPRStrategy(factors=4, iterations=200, learning_rate=0.05)]


@pytest.fixture(scope="module")
def blocks():
    """Two groups of users, each using 4 of its own group's 6 items; group B is larger, so
    popularity alone would favour B's items."""
    rng = np.random.default_rng(1)
    usage = {}
    for group, n_users in (("a", 8), ("b", 14)):
        items = [f"{group}{i}" for i in range(6)]
        for u in range(n_users):
            usage[f"{group}{u:02d}"] = sorted(rng.choice(items, size=4, replace=False).tolist())
    events = make_events(usage)
    return events, make_index(events)


@pytest.mark.parametrize("strategy", small_anchors(), ids=lambda s: f"{s.name}")
def test_anchors_follow_the_blocks(blocks, strategy):
    events, index = blocks
    items = index.matrix("app").items
    other = [i for i, item in enumerate(items) if item.startswith("b")]
    queries = [("a00", events[events["user_id"] == "a00"]),  # an index user
               (None, make_events({"new": ["a0", "a3"]}))]  # an unseen history, row -1
    for user, history in queries:
        scored = strategy.score(index, query_of(index, user, history), "app")
        assert scored.scores.shape == (len(items),)
        used = set(history["app"])
        novel = [i for i, item in enumerate(items) if item.startswith("a") and item not in used]
        assert novel and scored.scores[novel].min() > scored.scores[other].max(), (user, scored)
        assert set(scored.evidence) == set(range(len(items)))
        assert all(isinstance(text, str) and text for text in scored.evidence.values())


def test_ease_closed_form():
    rng = np.random.default_rng(0)
    x = (rng.random((9, 5)) < 0.5).astype(float)
    x[0] = 1.0  # every item used at least once
    usage = {f"u{u}": [f"i{i}" for i in np.flatnonzero(x[u])] for u in range(len(x))}
    index = make_index(make_events(usage))
    assert index.matrix("app").items == [f"i{i}" for i in range(5)]
    ease = EASEStrategy(l2=2.0)
    weights = ease.fit(index, "app")
    assert np.allclose(np.diag(weights), 0.0)
    # the definition: column j is the ridge regression of x_j on the other items' columns
    expected = np.zeros((5, 5))
    for j in range(5):
        others = [i for i in range(5) if i != j]
        a = x[:, others]
        expected[others, j] = np.linalg.solve(a.T @ a + 2.0 * np.eye(4), a.T @ x[:, j])
    assert np.allclose(weights, expected, atol=1e-5)
    batch = QueryBatch(np.arange(len(x)), sparse.csr_matrix(x), index.embeddings)
    assert np.allclose(ease.score_batch(index, batch, "app"), x @ expected, atol=1e-5)


def test_itemknn_similarity_by_hand():
    events = make_events({"u0": ["p", "q"], "u1": ["p", "q", "r"], "u2": ["p", "r"],
                          "u3": ["s"]})
    index = make_index(events)
    knn = ItemKNNStrategy(n_neighbours=1, shrink=0.0)
    similarity = knn.fit(index, "app").toarray()  # items p, q, r, s
    assert np.all((similarity > 0).sum(axis=1) <= 1) and np.allclose(np.diag(similarity), 0)
    assert np.isclose(similarity[1, 0], 2 / np.sqrt(3 * 2))  # q's nearest item is p
    shrunk = ItemKNNStrategy(n_neighbours=3, shrink=4.0).fit(index, "app").toarray()
    assert np.isclose(shrunk[1, 0], 2 / (np.sqrt(3 * 2) + 4.0))
    assert np.isclose(shrunk[1, 2], 1 / (np.sqrt(2 * 2) + 4.0))
    assert not shrunk[3].any()  # s is never co-used


def test_userknn_never_uses_the_query_user():
    events = make_events({"solo": ["s0", "s1"], "x0": ["c0", "c1"], "x1": ["c0", "c2"],
                          "x2": ["c1", "c2"]})
    index = make_index(events)
    knn = UserKNNStrategy(n_neighbours=3)
    solo = events[events["user_id"] == "solo"]
    own = knn.score(index, query_of(index, "solo", solo), "app")
    assert not own.scores.any()  # its only co-user of s0, s1 is itself
    copy = knn.score(index, query_of(index, None, solo.assign(user_id="twin")), "app")
    items = index.matrix("app").items
    assert copy.scores[items.index("s0")] > 0  # an unseen twin does learn from solo's row
    x0 = knn.score(index, query_of(index, "x0", events[events["user_id"] == "x0"]), "app")
    assert np.isclose(x0.scores[items.index("c2")], 2 * 0.5)  # x1 and x2, cosine 1/2 each


@pytest.mark.parametrize("strategy", small_anchors(), ids=lambda s: f"{s.name}")
def test_batch_equals_single_queries(blocks, strategy):
    events, index = blocks
    queries = [query_of(index, user, events[events["user_id"] == user])
               for user in ("a01", "b03", "b10")]
    queries += [query_of(index, None, make_events({"n": ["b1", "b2", "b5"]})),
                query_of(index, None, make_events({"m": ["a2"]}))]
    batch = index.batch(queries, "app")
    assert list(batch.rows[:3]) == [index.user_ids.index(u) for u in ("a01", "b03", "b10")]
    assert list(batch.rows[3:]) == [-1, -1]
    scores = strategy.score_batch(index, batch, "app")
    assert scores.shape == (5, len(index.matrix("app").items))
    for q, query in enumerate(queries):
        assert np.allclose(scores[q], strategy.score(index, query, "app").scores,
                           rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("strategy", small_anchors(), ids=lambda s: f"{s.name}")
def test_empty_unseen_history_is_a_cold_start(blocks, strategy):
    _, index = blocks
    empty = make_events({"x": ["a0"]}).iloc[:0]
    scores = strategy.score(index, query_of(index, None, empty), "app").scores
    assert np.all(np.isfinite(scores))
    if isinstance(strategy, BPRStrategy):  # no usage to fold in: the item bias alone
        assert np.allclose(scores, strategy.fit(index, "app").item_factors[:, -1])
    elif not isinstance(strategy, ALSStrategy):
        assert not scores.any()


def test_als_is_deterministic_and_fits_lazily_once(blocks):
    events, index = blocks
    query = query_of(index, "a02", events[events["user_id"] == "a02"])
    options = {"factors": 4, "regularization": 0.05, "alpha": 5.0}  # sized for 22 users
    first, second = ALSStrategy(**options, random_state=3), ALSStrategy(**options, random_state=3)
    assert np.array_equal(first.score(index, query, "app").scores,
                          second.score(index, query, "app").scores)
    model = first.fit(index, "app")
    assert first.fit(index, "app") is model  # cached per kind and usage matrix
    refreshed = make_index(events)  # a new UsageMatrix object: fitted anew
    assert first.fit(refreshed, "app") is not model
    other = ALSStrategy(**options, random_state=4).score(index, query, "app").scores
    assert not np.allclose(other, first.score(index, query, "app").scores)


@pytest.mark.parametrize("make", [
    lambda: ItemKNNStrategy(n_neighbours=0), lambda: ItemKNNStrategy(shrink=-1.0),
    lambda: ItemKNNStrategy(weighting="tfidf"), lambda: ItemKNNStrategy(n_neighbours=2.5),
    lambda: UserKNNStrategy(n_neighbours=0), lambda: EASEStrategy(l2=0.0),
    lambda: EASEStrategy(l2=float("nan")), lambda: ALSStrategy(factors=0),
    lambda: ALSStrategy(regularization=-0.1), lambda: ALSStrategy(iterations=0),
    lambda: ALSStrategy(alpha=0.0), lambda: BPRStrategy(factors=-3),
    lambda: BPRStrategy(learning_rate=0.0), lambda: BPRStrategy(num_threads=-1),
    lambda: BPRStrategy(iterations=True),
])
def test_bad_hyper_parameters_raise(make):
    with pytest.raises(ValueError, match="must be"):
        make()


def test_anchor_registry():
    assert set(ANCHORS) == {"itemknn", "userknn", "ease", "als", "bpr"}
    assert all(ANCHORS[name]().name == name for name in ANCHORS)
