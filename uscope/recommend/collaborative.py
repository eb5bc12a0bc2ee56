"""Collaborative-filtering anchors: the textbook baselines a recommender is measured against.

Every anchor fits on the index's users x items matrix of the kind it scores, made binary
(used or not) unless it says otherwise, and scores many queries at once (``score_batch``).

- ``itemknn``: item-based top-N (Sarwar et al. 2001; Deshpande & Karypis 2004). Item-item
  cosine with a shrink term, each item keeps its ``n_neighbours`` most similar items, and an
  item scores the summed similarity to the items the user used: score = x_q S.
- ``userknn``: user-based kNN (Herlocker et al. 1999; Resnick et al. 1994). The ``n_neighbours``
  users whose usage vectors are most cosine-similar to the query's vote for their items with
  that similarity; a user is never its own neighbour.
- ``ease``: EASE^R (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"), a
  closed-form item-item linear model with a zero diagonal: score = x_q B.
- ``als``: implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008), weighted ALS.
- ``bpr``: Bayesian Personalized Ranking (Rendle et al. 2009), pairwise SGD on factors.

ALS and BPR come from the library ``implicit`` (Ben Frederickson): maintained, shipped as a
binary wheel, CPU ALS and BPR with a fold-in path for users it has not seen. LensKit, cornac
and RecBole are heavier frameworks with their own data pipelines and evaluation loops; here
only the fitted factors are needed. The three neighbourhood/linear anchors are small enough to
write out in numpy/scipy.

Queries that are index users (``batch.rows >= 0``) use the fitted user factors; an unseen
history (row -1) is folded in from its own usage row (see ``ALSStrategy`` and ``BPRStrategy``).
The item-based anchors (itemknn, ease) and userknn always score from the query's own usage row.
All anchors ignore the batch's context.

Defaults (itemknn n = 50, userknn n = 100, EASE^R lambda = 1000, ALS 64 factors with
regularisation 20) are the best mean over the validation cases of
``benchmarks/validate_recommend.py`` (validation users of Frappe, Foursquare NYC and netfp;
BENCHMARKS ``recommend-validation``, stage 1). lambda = 50 is better on Frappe's leave-out
alone, and worse on its cold users and on Foursquare.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from scipy import linalg, sparse
from threadpoolctl import threadpool_limits

from uscope.data.items import UsageMatrix
from uscope.recommend.strategies import CatalogueIndex, Query, QueryBatch, Scored


def binary(counts: sparse.spmatrix) -> sparse.csr_matrix:
    """1 where a user used an item, as float32 CSR."""
    return sparse.csr_matrix(counts > 0, dtype=np.float32)


def _check_int(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_float(name: str, value: Any, positive: bool = False) -> None:
    ok = isinstance(value, (int, float, np.number)) and np.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def top_k_per_row(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Keep the `k` largest entries of each row of a CSR matrix."""
    matrix = sparse.csr_matrix(matrix)
    lengths = np.diff(matrix.indptr)
    keep = np.repeat(lengths <= k, lengths)  # short rows are kept whole
    for r in np.flatnonzero(lengths > k):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        keep[start + np.argpartition(-matrix.data[start:end], k - 1)[:k]] = True
    kept = np.minimum(lengths, k)
    indptr = np.concatenate([[0], np.cumsum(kept)])
    return sparse.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr),
                             shape=matrix.shape)


class CollaborativeStrategy(ABC):
    """Lazy fit cached per kind and UsageMatrix object; ``score`` wraps ``score_batch``.
    An anchor defines ``_fit`` (its model from the users x items counts) and
    ``score_batch``."""

    name = "collaborative"

    def __init__(self) -> None:
        self._fitted: dict[str, tuple[UsageMatrix, Any]] = {}

    def fit(self, index: CatalogueIndex, kind: str) -> Any:
        """The model fitted on ``index.matrix(kind)`` (fitted on first use, then cached)."""
        full = index.matrix(kind)
        cached = self._fitted.get(kind)
        if cached is None or cached[0] is not full:
            self._fitted[kind] = (full, self._fit(sparse.csr_matrix(full.counts)))
        return self._fitted[kind][1]

    @abstractmethod
    def _fit(self, counts: sparse.csr_matrix) -> Any:
        """The fitted model of this anchor."""

    @abstractmethod
    def score_batch(self, index: CatalogueIndex, batch: QueryBatch, kind: str) -> np.ndarray:
        """(Q, n_items) scores, higher is better."""

    def _evidence(self, index: CatalogueIndex, batch: QueryBatch, kind: str,
                  scores: np.ndarray) -> dict[int, str]:
        population = index.matrix(kind).popularity()
        return {i: f"{self.name} score {s:.3f}; used by {p:.0%} of all users"
                for i, (s, p) in enumerate(zip(scores, population))}

    def score(self, index: CatalogueIndex, query: Query, kind: str) -> Scored:
        batch = index.batch([query], kind)
        scores = self.score_batch(index, batch, kind)[0]
        return Scored(scores, self._evidence(index, batch, kind, scores))


class ItemKNNStrategy(CollaborativeStrategy):
    """Item-based kNN. sim(i, j) = x_i . x_j / (|x_i| |x_j| + shrink) over item columns of the
    binary (``weighting="binary"``) or log1p-count (``"log1p"``) user x item matrix; each item
    keeps its `n_neighbours` most similar items; score = x_q S, x_q weighted the same way."""

    name = "itemknn"
    WEIGHTINGS = ("binary", "log1p")

    def __init__(self, n_neighbours: int = 50, shrink: float = 10.0,
                 weighting: str = "binary"):
        super().__init__()
        _check_int("n_neighbours", n_neighbours)
        _check_float("shrink", shrink)
        if weighting not in self.WEIGHTINGS:
            raise ValueError(f"weighting must be one of {self.WEIGHTINGS}, got {weighting!r}")
        self.n_neighbours, self.shrink, self.weighting = n_neighbours, shrink, weighting

    def weigh(self, counts: sparse.spmatrix) -> sparse.csr_matrix:
        if self.weighting == "binary":
            return binary(counts)
        weighted = sparse.csr_matrix(counts, dtype=np.float32)
        weighted.data = np.log1p(np.clip(weighted.data, 0, None))
        weighted.eliminate_zeros()
        return weighted

    def _fit(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        x = self.weigh(counts)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        gram = sparse.csr_matrix(x.T @ x)  # (n_items, n_items) co-use
        gram.setdiag(0)
        gram.eliminate_zeros()
        rows = np.repeat(np.arange(gram.shape[0]), np.diff(gram.indptr))
        gram.data = gram.data / (norms[rows] * norms[gram.indices] + self.shrink)
        return top_k_per_row(gram, self.n_neighbours)  # S: row i = item i's neighbours

    def score_batch(self, index: CatalogueIndex, batch: QueryBatch, kind: str) -> np.ndarray:
        similarity = self.fit(index, kind)
        return np.asarray((self.weigh(batch.usage) @ similarity).todense(), dtype=np.float64)

    def _evidence(self, index, batch, kind, scores):
        similarity = self.fit(index, kind)
        near = np.asarray((binary(batch.usage) @ binary(similarity)).todense()).ravel()
        return {i: f"among the {self.n_neighbours} most similar items of {int(n)} of your "
                   f"items (similarity {s:.3f})" for i, (n, s) in enumerate(zip(near, scores))}


class UserKNNStrategy(CollaborativeStrategy):
    """User-based kNN on binary usage: the `n_neighbours` index users most cosine-similar to the
    query's usage (never the query's own row) vote; score(i) = sum_n sim(q, n) 1[n used i]."""

    name = "userknn"

    def __init__(self, n_neighbours: int = 100):
        super().__init__()
        _check_int("n_neighbours", n_neighbours)
        self.n_neighbours = n_neighbours

    def _fit(self, counts: sparse.csr_matrix) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        used = binary(counts)
        return used, unit_rows_sparse(used)

    def neighbour_weights(self, index: CatalogueIndex, batch: QueryBatch,
                          kind: str) -> sparse.csr_matrix:
        """(Q, N) similarity of each query to its neighbours, zero elsewhere."""
        _, users = self.fit(index, kind)
        similarity = np.asarray((unit_rows_sparse(binary(batch.usage)) @ users.T).todense())
        own = batch.rows >= 0
        similarity[np.flatnonzero(own), batch.rows[own]] = -np.inf  # never the user itself
        n = min(self.n_neighbours, similarity.shape[1])
        top = np.argpartition(-similarity, n - 1, axis=1)[:, :n]
        values = np.take_along_axis(similarity, top, axis=1)
        keep = np.isfinite(values) & (values > 0)
        queries = np.repeat(np.arange(len(batch)), n).reshape(-1, n)
        return sparse.csr_matrix((values[keep], (queries[keep], top[keep])),
                                 shape=similarity.shape)

    def score_batch(self, index: CatalogueIndex, batch: QueryBatch, kind: str) -> np.ndarray:
        used, _ = self.fit(index, kind)
        weights = self.neighbour_weights(index, batch, kind)
        return np.asarray((weights @ used).todense(), dtype=np.float64)

    def _evidence(self, index, batch, kind, scores):
        used, _ = self.fit(index, kind)
        weights = self.neighbour_weights(index, batch, kind)
        voters = np.asarray((binary(weights) @ used).todense()).ravel()
        return {i: f"used by {int(v)} of your {weights.nnz} most similar users by usage "
                   f"(summed similarity {s:.3f})" for i, (v, s) in enumerate(zip(voters, scores))}


class EASEStrategy(CollaborativeStrategy):
    """EASE^R (Steck 2019) on binary usage, L2 strength `l2` (lambda); score = x_q B."""

    name = "ease"

    def __init__(self, l2: float = 1000.0):
        super().__init__()
        _check_float("l2", l2, positive=True)
        self.l2 = l2

    def _fit(self, counts: sparse.csr_matrix) -> np.ndarray:
        x = binary(counts).astype(np.float64)
        # Steck 2019, eq. 8 and its solution: B = argmin ||X - XB||^2 + lambda ||B||^2
        # s.t. diag(B) = 0 is B = I - P diagMat(1 / diag(P)), P = (X^T X + lambda I)^-1,
        # i.e. B_ij = -P_ij / P_jj off the diagonal and B_jj = 0.
        gram = np.asarray((x.T @ x).todense())
        gram[np.diag_indices_from(gram)] += self.l2
        precision = linalg.inv(gram, overwrite_a=True, check_finite=False)
        weights = -precision / np.diag(precision)[None, :]
        np.fill_diagonal(weights, 0.0)
        return weights.astype(np.float32)

    def score_batch(self, index: CatalogueIndex, batch: QueryBatch, kind: str) -> np.ndarray:
        weights = self.fit(index, kind)
        return np.asarray(binary(batch.usage) @ weights, dtype=np.float64)

    def _evidence(self, index, batch, kind, scores):
        return {i: f"predicted from your items by EASE (score {s:.3f})"
                for i, s in enumerate(scores)}


class FactorStrategy(CollaborativeStrategy):
    """Shared scoring of the factor models: score = user_factors @ item_factors.T."""

    def user_factors(self, model: Any, batch: QueryBatch) -> np.ndarray:
        rows = np.asarray(batch.rows)
        factors = np.zeros((len(rows), model.item_factors.shape[1]), dtype=np.float32)
        seen = rows >= 0
        factors[seen] = model.user_factors[rows[seen]]
        if (~seen).any():
            factors[~seen] = self.fold_in(model, binary(batch.usage)[np.flatnonzero(~seen)])
        return factors

    @abstractmethod
    def fold_in(self, model: Any, used: sparse.csr_matrix) -> np.ndarray:
        """User factors for unseen histories, (Q, factors), from their binary usage rows."""

    def score_batch(self, index: CatalogueIndex, batch: QueryBatch, kind: str) -> np.ndarray:
        model = self.fit(index, kind)
        return (self.user_factors(model, batch) @ model.item_factors.T).astype(np.float64)


class ALSStrategy(FactorStrategy):
    """Implicit-feedback ALS (Hu et al. 2008) from ``implicit`` on binary usage: preference 1
    with confidence `alpha` on used items, preference 0 with confidence 1 elsewhere (implicit
    reads the matrix values times alpha as the confidences). An unseen history is folded in
    by implicit's ``recalculate_user``: the exact least-squares solve of the same weighted
    objective for that user against the fixed item factors.

    implicit 0.7 does not scale `regularization` by the data size: 20 (with alpha 2) suits
    about 1,000 users (64 factors on a 52-app catalogue overfit badly at 0.1); on a few dozen
    users it shrinks every factor to ~0, so pass a smaller one there."""

    name = "als"

    def __init__(self, factors: int = 64, regularization: float = 20.0, iterations: int = 15,
                 alpha: float = 2.0, random_state: int = 0, num_threads: int = 0):
        super().__init__()
        _check_int("factors", factors)
        _check_float("regularization", regularization)
        _check_int("iterations", iterations)
        _check_float("alpha", alpha, positive=True)
        _check_int("num_threads", num_threads, low=0)
        self.factors, self.regularization, self.iterations = factors, regularization, iterations
        self.alpha, self.random_state, self.num_threads = alpha, random_state, num_threads

    def _fit(self, counts: sparse.csr_matrix) -> Any:
        from implicit.als import AlternatingLeastSquares

        with threadpool_limits(1, "blas"):  # implicit warns on threaded BLAS, in __init__
            model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, random_state=self.random_state,
                num_threads=self.num_threads, use_gpu=False)
            model.fit(binary(counts), show_progress=False)
        return model

    def fold_in(self, model: Any, used: sparse.csr_matrix) -> np.ndarray:
        with threadpool_limits(1, "blas"):
            return model.recalculate_user(np.arange(used.shape[0]), used)


class BPRStrategy(FactorStrategy):
    """BPR (Rendle et al. 2009) from ``implicit`` on binary usage; `num_threads=1` keeps its
    SGD reproducible. implicit appends an item bias: item factors [V, b], user factors [w, 1].

    Fold-in of an unseen history with used items P and unused items N: w points along
    mean_{i in P} v_i - mean_{j in N} v_j, the gradient at w = 0 of the user's own BPR
    objective sum_{i in P, j in N} ln sigma(w . (v_i - v_j) + b_i - b_j) with the biases set
    aside, scaled to the mean norm of the fitted users' w; the score is V w + b. (A ridge
    regression of the binary row on V was tried first: its w came out ~15x shorter than the
    fitted users', so the bias swamped it, and on a small catalogue it fitted the zeros.)"""

    name = "bpr"

    def __init__(self, factors: int = 64, learning_rate: float = 0.003,
                 regularization: float = 0.01, iterations: int = 100, random_state: int = 0,
                 num_threads: int = 1):
        super().__init__()
        _check_int("factors", factors)
        _check_float("learning_rate", learning_rate, positive=True)
        _check_float("regularization", regularization)
        _check_int("iterations", iterations)
        _check_int("num_threads", num_threads, low=0)
        self.factors, self.learning_rate = factors, learning_rate
        self.regularization, self.iterations = regularization, iterations
        self.random_state, self.num_threads = random_state, num_threads

    def _fit(self, counts: sparse.csr_matrix) -> Any:
        from implicit.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(
            factors=self.factors, learning_rate=self.learning_rate,
            regularization=self.regularization, iterations=self.iterations,
            random_state=self.random_state, num_threads=self.num_threads, use_gpu=False)
        with threadpool_limits(1, "blas"):
            model.fit(binary(counts), show_progress=False)
        return model

    def fold_in(self, model: Any, used: sparse.csr_matrix) -> np.ndarray:
        latent = np.asarray(model.item_factors[:, :-1], dtype=np.float64)  # V, bias dropped
        n_used = np.asarray(used.sum(axis=1), dtype=np.float64)  # (Q, 1)
        used_sum = np.asarray(used @ latent, dtype=np.float64)
        unused_sum = latent.sum(axis=0)[None, :] - used_sum
        n_unused = len(latent) - n_used
        direction = (np.divide(used_sum, n_used, out=np.zeros_like(used_sum),
                               where=n_used > 0)
                     - np.divide(unused_sum, n_unused, out=np.zeros_like(unused_sum),
                                 where=n_unused > 0))
        direction[n_used[:, 0] == 0] = 0.0  # nothing used: the item bias alone
        fitted_norm = np.linalg.norm(model.user_factors[:, :-1], axis=1).mean()
        length = np.linalg.norm(direction, axis=1, keepdims=True)
        weights = direction * np.divide(fitted_norm, length, out=np.zeros_like(length),
                                        where=length > 0)
        return np.hstack([weights, np.ones((used.shape[0], 1))]).astype(np.float32)


def unit_rows_sparse(rows: sparse.spmatrix) -> sparse.csr_matrix:
    """CSR rows scaled to unit L2 norm (zero rows stay zero)."""
    rows = sparse.csr_matrix(rows, dtype=np.float32)
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    return sparse.csr_matrix(sparse.diags(np.divide(1.0, norms, out=np.zeros_like(norms),
                                                    where=norms > 0)) @ rows)


ANCHORS = {"itemknn": ItemKNNStrategy, "userknn": UserKNNStrategy, "ease": EASEStrategy,
           "als": ALSStrategy, "bpr": BPRStrategy}
