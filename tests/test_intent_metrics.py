"""Appendix D metrics (eq. 12-16) against hand-computed values and sklearn."""

import math

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score

from generative.intent.metrics import (
    classification_metrics,
    intent_metrics,
    ndcg_at_k,
    recall_per_intent,
)


def test_hand_computed_example():
    # classes {0, 1, 2}: TP = (1, 1, 0), FP = (0, 2, 0), FN = (1, 0, 1)
    m = classification_metrics([0, 0, 1, 2], [0, 1, 1, 1])
    assert m["Prec_m"] == pytest.approx((1 + 1 / 3 + 0) / 3)   # eq. 14
    assert m["Rec_m"] == pytest.approx((0.5 + 1 + 0) / 3)      # eq. 15
    assert m["Prec_w"] == pytest.approx((1 * 1 + 3 * (1 / 3) + 0) / 4)  # eq. 12
    assert m["Rec_w"] == pytest.approx((2 * 0.5 + 1 * 1 + 1 * 0) / 4)   # eq. 13
    assert m["Prec_w(support)"] == pytest.approx((2 * 1 + 1 * (1 / 3) + 1 * 0) / 4)


def test_weighted_metrics_reduce_to_accuracy_and_macro_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 300)
    p = np.where(rng.random(300) < 0.4, y, rng.integers(0, 7, 300))
    m = classification_metrics(y, p)
    assert m["Prec_w"] == pytest.approx(np.mean(y == p))
    assert m["Rec_w"] == pytest.approx(np.mean(y == p))
    assert m["Prec_m"] == pytest.approx(precision_score(y, p, average="macro", zero_division=0))
    assert m["Rec_m"] == pytest.approx(recall_score(y, p, average="macro", zero_division=0))
    assert m["Prec_w(support)"] == pytest.approx(
        precision_score(y, p, average="weighted", zero_division=0))


def test_ndcg_single_relevant_item():
    scores = np.array([[0.9, 0.5, 0.1, 0.0, -1.0],    # true 0 at rank 1
                       [0.9, 0.5, 0.1, 0.0, -1.0],    # true 1 at rank 2
                       [0.9, 0.5, 0.1, 0.0, -1.0]])   # true 3 at rank 4
    y = np.array([0, 1, 3])
    assert ndcg_at_k(y, scores, 3) == pytest.approx((1 + 1 / math.log2(3) + 0) / 3)
    assert ndcg_at_k(y, scores, 5) == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(5))
                                                    / 3)


def test_ndcg_ties_follow_argmax():
    scores = np.zeros((2, 4))
    # argmax of a constant row is intent 0: it gets rank 1, intent 2 rank 3
    assert ndcg_at_k(np.array([0]), scores[:1], 3) == pytest.approx(1.0)
    assert ndcg_at_k(np.array([2]), scores[:1], 3) == pytest.approx(1 / math.log2(4))
    m = intent_metrics(np.array([0, 2]), scores)
    assert m["Prec_w"] == pytest.approx(0.5)


def test_recall_per_intent():
    assert recall_per_intent([0, 0, 1, 2], [0, 1, 1, 1], [0, 2, 5]) == {0: 0.5, 2: 0.0, 5: 0.0}
