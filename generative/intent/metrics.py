"""Intent-prediction metrics exactly as PITuning Appendix D (eq. 12-16).

C is the set of classes that occur in the labels or the predictions (or the ``classes`` given);
a per-class ratio with a zero denominator counts as 0. As printed, eq. 12 weights each class's
precision by TP_c + FP_c and eq. 13 each class's recall by TP_c + FN_c, so both reduce to
sum_c TP_c / N, the accuracy; ``Prec_w(support)`` is also returned: the support-weighted
precision (weights TP_c + FN_c, the common library convention), labelled as such.
NDCG@k (eq. 16) has one relevant intent per sample (rel = 1 for the true intent, 0 otherwise);
the printed denominator reads (rel_j - 1), which is zero for binary relevance, so the ideal DCG
sum_j (2^rel_j - 1) / log2(j + 1) of the ideal ranking (= 1) is used, the standard definition.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("Prec_w", "Rec_w", "Prec_m", "Rec_m", "NDCG@3", "NDCG@5")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray):
    """TP_c, FP_c, FN_c for each class c in ``classes``."""
    tp = np.array([np.sum((y_pred == c) & (y_true == c)) for c in classes], dtype=np.float64)
    fp = np.array([np.sum((y_pred == c) & (y_true != c)) for c in classes], dtype=np.float64)
    fn = np.array([np.sum((y_pred != c) & (y_true == c)) for c in classes], dtype=np.float64)
    return tp, fp, fn


def classification_metrics(y_true, y_pred, classes=None) -> dict[str, float]:
    """Prec_w, Rec_w, Prec_m, Rec_m (eq. 12-15) and Prec_w(support)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if classes is None:
        classes = np.union1d(y_true, y_pred)
    classes = np.asarray(classes)
    tp, fp, fn = confusion_counts(y_true, y_pred, classes)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    predicted, support = tp + fp, tp + fn
    return {
        "Prec_w": float(_ratio((predicted * precision).sum(), predicted.sum())),  # eq. 12
        "Rec_w": float(_ratio((support * recall).sum(), support.sum())),          # eq. 13
        "Prec_m": float(precision.mean()) if len(classes) else 0.0,               # eq. 14
        "Rec_m": float(recall.mean()) if len(classes) else 0.0,                   # eq. 15
        "Prec_w(support)": float(_ratio((support * precision).sum(), support.sum())),
    }


def ndcg_at_k(y_true, scores, k: int) -> float:
    """Mean NDCG@k (eq. 16) with the true intent as the only relevant item (rel_i in {0, 1})."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if len(y_true) == 0:
        return 0.0
    # rank (1-based) of the true intent; ties are broken by intent index, as argmax does
    true_score = scores[np.arange(len(y_true)), y_true][:, None]
    earlier = np.arange(scores.shape[1])[None, :] < y_true[:, None]
    rank = 1 + ((scores > true_score) | ((scores == true_score) & earlier)).sum(axis=1)
    dcg = np.where(rank <= k, (2.0 ** 1 - 1) / np.log2(rank + 1.0), 0.0)  # eq. 16 numerator
    ideal = (2.0 ** 1 - 1) / np.log2(1 + 1.0)                              # ideal ranking: rank 1
    return float(np.mean(dcg / ideal))


def intent_metrics(y_true, scores, classes=None) -> dict[str, float]:
    """All of Appendix D from scores (N, N_I): the prediction is the top-scoring intent."""
    scores = np.asarray(scores)
    y_pred = scores.argmax(axis=1)
    out = classification_metrics(y_true, y_pred, classes)
    out["NDCG@3"] = ndcg_at_k(y_true, scores, 3)
    out["NDCG@5"] = ndcg_at_k(y_true, scores, 5)
    return out


def recall_per_intent(y_true, y_pred, intents) -> dict[int, float]:
    """Recall TP_c / (TP_c + FN_c) of each intent in ``intents`` (for the rare-intent study)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    tp, _, fn = confusion_counts(y_true, y_pred, np.asarray(intents))
    return {int(c): float(r) for c, r in zip(intents, _ratio(tp, tp + fn))}
