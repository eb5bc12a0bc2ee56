"""Baselines for next-intent prediction, fitted in the same protocol as PITuning.

- ``MostFrequent``: the user's most frequent intent in their tuning data;
- ``FirstOrderMarkov``: P(y_t | intent of x_{t-1}) from the user's transitions, backed off to
  the population's transitions;
- ``appendix_e_features`` + ``fit_lightgbm``: LightGBM with the Appendix E feature set and the
  Table 5 hyper-parameters (with the paper's small-data rule below 200 rows).
All return scores (N, N_I) for ``intent_metrics``.
"""

from __future__ import annotations

import numpy as np
import torch

from generative.intent.data import IntentSamples, IntentSequences


def _prev_intent(samples: IntentSamples) -> np.ndarray:
    last = (samples.length - 1).clamp(min=0)
    return samples.intent_history[torch.arange(len(samples)), last].numpy()


class MostFrequent:
    """Per-user intent counts; the population distribution breaks ties and covers new users."""

    def __init__(self, n_intents: int):
        self.n_intents = n_intents

    def fit(self, tune: IntentSamples, population: IntentSamples) -> MostFrequent:
        self.prior = np.bincount(population.target.numpy(), minlength=self.n_intents)
        self.prior = self.prior / max(self.prior.sum(), 1)
        self.counts = {}
        for u, y in zip(tune.user.numpy(), tune.target.numpy()):
            self.counts.setdefault(int(u), np.zeros(self.n_intents))[y] += 1
        return self

    def scores(self, samples: IntentSamples) -> np.ndarray:
        out = np.tile(1e-3 * self.prior, (len(samples), 1))
        for i, u in enumerate(samples.user.numpy()):
            if int(u) in self.counts:
                out[i] += self.counts[int(u)]
        return out


class FirstOrderMarkov:
    """scores = user transition counts from the previous intent + ``backoff`` x population P."""

    def __init__(self, n_intents: int, backoff: float = 1.0):
        self.n_intents, self.backoff = n_intents, backoff

    def _counts(self, samples: IntentSamples) -> np.ndarray:
        table = np.zeros((self.n_intents, self.n_intents))
        np.add.at(table, (_prev_intent(samples), samples.target.numpy()), 1.0)
        return table

    def fit(self, tune: IntentSamples, population: IntentSamples) -> FirstOrderMarkov:
        pop = self._counts(population) + 1e-3
        self.population = pop / pop.sum(axis=1, keepdims=True)
        self.users = {int(u): self._counts(tune.subset(tune.user == u))
                      for u in torch.unique(tune.user).tolist()}
        return self

    def scores(self, samples: IntentSamples) -> np.ndarray:
        prev = _prev_intent(samples)
        out = self.backoff * self.population[prev]
        for i, (u, p) in enumerate(zip(samples.user.numpy(), prev)):
            if int(u) in self.users:
                out[i] = out[i] + self.users[int(u)][p]
        return out


def appendix_e_features(samples: IntentSamples, seqs: IntentSequences, n_intents: int,
                        slot_minutes: int, model_probs: np.ndarray | None = None):
    """(features (N, F), names) of Appendix E for each sample.

    (1) the population model's intent probabilities (when given); (2) whether the last
    location is among the user's 10 most frequent locations so far; (3) hour, weekday,
    timestamp, morning/afternoon/evening and weekend flags; (4) per intent c, T_0 = t - t_cn
    (eq. 17) and T_1 = t_cn - t_c(n-1) (eq. 18), NaN when c has not occurred. The current time
    t is the start of the target's time slot (the data's resolution), never the target's own
    timestamp.
    """
    positions = samples.position.numpy()
    want = {int(p): i for i, p in enumerate(positions)}
    n = len(samples)
    t0 = np.full((n, n_intents), np.nan)
    t1 = np.full((n, n_intents), np.nan)
    top_location = np.zeros(n)
    step = slot_minutes * 60.0
    for k in np.unique(samples.user.numpy()):
        part = seqs.user_slice(int(k))
        last = np.full(n_intents, np.nan)
        second = np.full(n_intents, np.nan)
        loc_counts: dict[int, int] = {}
        for p in range(part.start, part.stop):
            if p in want:
                i = want[p]
                now = np.floor(seqs.time_s[p] / step) * step
                t0[i] = now - last                    # eq. 17
                t1[i] = last - second                 # eq. 18
                prev_loc = int(seqs.location[p - 1]) if p > part.start else -1
                mine = loc_counts.get(prev_loc, 0)
                top_location[i] = float(mine > 0 and sum(c > mine for c in
                                                         loc_counts.values()) < 10)
            c = seqs.intent[p]
            second[c], last[c] = last[c], seqs.time_s[p]
            loc = int(seqs.location[p])
            loc_counts[loc] = loc_counts.get(loc, 0) + 1
    now = np.floor(seqs.time_s[positions] / step) * step
    stamp = np.asarray(now, dtype="datetime64[s]")
    hour = (now // 3600) % 24
    weekday = (stamp.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-01 was a Thursday
    columns = [top_location, hour, weekday, now, (hour >= 5) & (hour < 12),
               (hour >= 12) & (hour < 18), (hour >= 18) | (hour < 5), weekday >= 5]
    names = ["top10_location", "hour", "weekday", "timestamp", "morning", "afternoon",
             "evening", "weekend"]
    blocks = [np.column_stack(columns).astype(np.float64), t0, t1]
    names += [f"T0_{c}" for c in range(n_intents)] + [f"T1_{c}" for c in range(n_intents)]
    if model_probs is not None:
        blocks.insert(0, np.asarray(model_probs, dtype=np.float64))
        names = [f"p_model_{c}" for c in range(n_intents)] + names
    return np.hstack(blocks), names


def lightgbm_params(n_rows: int, n_intents: int, num_threads: int = 1) -> dict:
    """Table 5; below 200 rows: max_depth 3, num_leaves 3, lambda_l1 = lambda_l2 = 1."""
    params = {"objective": "multiclass", "boosting": "gbdt", "num_class": n_intents,
              "num_iterations": 2000, "num_leaves": 32, "max_depth": -1,
              "min_data_in_leaf": 20, "feature_fraction": 1.0, "early_stopping_round": 75,
              "lambda_l1": 0.0, "lambda_l2": 0.0, "random_state": 42, "verbose": -1,
              "num_threads": num_threads, "deterministic": True}
    if n_rows < 200:
        params.update(max_depth=3, num_leaves=3, lambda_l1=1.0, lambda_l2=1.0)
    return params


def _time_split(users: np.ndarray, valid_fraction: float) -> np.ndarray:
    """Bool mask of validation rows: the last ``valid_fraction`` of each user's rows."""
    valid = np.zeros(len(users), dtype=bool)
    for u in np.unique(users):
        rows = np.flatnonzero(users == u)
        n_valid = int(np.floor(valid_fraction * len(rows)))
        if n_valid > 0:
            valid[rows[-n_valid:]] = True
    return valid


def fit_lightgbm(features: np.ndarray, target: np.ndarray, users: np.ndarray, n_intents: int,
                 valid_fraction: float = 0.2, num_threads: int = 1):
    """A LightGBM booster (Table 5) with early stopping on each user's latest rows."""
    import lightgbm as lgb

    valid = _time_split(users, valid_fraction)
    if not valid.any() or valid.all():
        valid = np.zeros(len(target), dtype=bool)
        valid[-1] = True  # too few rows to hold out: monitor the last one
        train = np.ones(len(target), dtype=bool)
    else:
        train = ~valid
    params = lightgbm_params(int(train.sum()), n_intents, num_threads)
    train_set = lgb.Dataset(features[train], target[train], free_raw_data=False)
    valid_set = lgb.Dataset(features[valid], target[valid], reference=train_set)
    return lgb.train(params, train_set, valid_sets=[valid_set])


def lightgbm_per_user(features: np.ndarray, tune: IntentSamples, test_features: np.ndarray,
                      test: IntentSamples, n_intents: int) -> np.ndarray:
    """Device-side LightGBM (paper Table 3): one booster per user, scores (N_test, N_I)."""
    out = np.zeros((len(test), n_intents))
    tune_user, test_user = tune.user.numpy(), test.user.numpy()
    for u in np.unique(test_user):
        rows = tune_user == u
        if rows.sum() == 0:
            continue
        booster = fit_lightgbm(features[rows], tune.target.numpy()[rows], tune_user[rows],
                               n_intents)
        out[test_user == u] = booster.predict(test_features[test_user == u])
    return out
