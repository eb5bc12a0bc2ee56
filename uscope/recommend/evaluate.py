"""Evaluation harness for novelty recommendation: every strategy side by side, with seeds.

The protocols (``uscope.recommend.protocols``) decide what a model sees and what it must find:
``novelty`` (one global time cut-off: netfp's day), ``later-weeks`` (each user's own later
weeks: Foursquare, StudentLife), ``leave-out`` (a fifth of each user's items: Frappe, which
has no times), ``cold`` (users with at most ``max_known`` known items) and
``apps-from-locations`` (the paper's cold start, Sec. 7.1.2: apps recommended from location
history alone).

For every seed the profiles are written from the split's visible events only (nothing hidden
leaks into h_u), every strategy is fitted on those events and asked for every evaluated user
in one ``recommend_batch``. Seeds draw what is hidden (leave-out, cold, apps-from-locations) or
resample the evaluated users (the two time protocols, whose split is fixed). Users are split
once into validation and test (``split_users``): settings are chosen with ``users="validation"``
and reported with ``users="test"``.

Metrics (RecBole / recommenders conventions): Recall, NDCG and MRR at ``ks`` per user, their
mean; catalogue coverage and the mean popularity of the top-``coverage_k`` lists (popularity
bias); ``paired`` differences against a reference strategy pooled over seeds, with 95%
bootstrap intervals over users.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from uscope.data.schema import DataError, validate_events
from uscope.data.splits import cutoff_time, novelty_split, require_real
from uscope.profile import ProfileSet, profile_users
from uscope.recommend.metrics import coverage, mean_popularity, paired_bootstrap, ranking_metrics
from uscope.recommend.protocols import (
    Split,
    apps_from_locations_split,
    cold_user_split,
    later_weeks_split,
    leave_out_split,
    location_only,
    novelty_split_protocol,
    split_users,
)
from uscope.recommend.recommender import Recommender, make_strategy

__all__ = ["PROTOCOLS", "EvalConfig", "Evaluation", "cutoff_time", "evaluate_recommendations",
           "location_only", "make_split", "novelty_split", "run_evaluation", "summarise"]

PROTOCOLS = ("novelty", "later-weeks", "leave-out", "cold", "apps-from-locations")
SEEDED = ("leave-out", "cold", "apps-from-locations")  # the seed draws what is hidden
USER_SETS = ("all", "validation", "test")


@dataclass
class EvalConfig:
    kind: str = "app"
    protocol: str = "novelty"
    strategies: Sequence[str] | dict[str, Any] = ("popular", "neighbours")  # names, or
    # label -> strategy name or object (variants of one strategy side by side)
    ks: Sequence[int] = (5, 10, 20)
    seeds: Sequence[int] = (0, 1, 2)
    users: str | Sequence[str] = "all"  # "validation" | "test" | "all" | explicit ids
    validation_fraction: float = 0.5  # share of users in the validation set
    cutoff: str | float = 0.6  # novelty: a timestamp, or a fraction of the time span
    history_fraction: float = 0.7  # later-weeks: share of each user's weeks kept as history
    fraction: float = 0.2  # leave-out: share of each user's items hidden
    max_known: int = 5  # cold: known items left to each evaluated user
    holdout_fraction: float = 0.3  # apps-from-locations: share of users whose apps are hidden
    n_targets: int = 5  # apps-from-locations: how many of the user's top apps are targets
    use_context: bool = False  # query with the context of the hidden rows
    coverage_k: int = 10
    profile_backend: str = "heuristic"
    max_users: int | None = None  # evaluate at most this many users (first by id)
    strategy_options: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.protocol == "coldstart":  # the name before the protocols module
            self.protocol = "apps-from-locations"
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.protocol == "apps-from-locations" and self.kind != "app":
            raise ValueError("the apps-from-locations protocol recommends apps (kind='app')")
        if isinstance(self.users, str) and self.users not in USER_SETS:
            raise ValueError(f"users must be one of {USER_SETS} or a list of ids")
        if not self.strategies:
            raise ValueError("name at least one strategy")
        if not self.seeds or not self.ks or min(self.ks) < 1:
            raise ValueError("need at least one seed and cut-offs ks >= 1")


@dataclass
class Evaluation:
    """``results``: one row per (strategy, seed) with mean metrics, coverage and popularity;
    ``per_user``: one row per (strategy, seed, user) for paired comparisons."""

    results: pd.DataFrame
    per_user: pd.DataFrame
    splits: dict[int, str] = field(default_factory=dict)  # seed -> what was hidden

    def paired(self, reference: str, metric: str, n_boot: int = 1000) -> pd.DataFrame:
        """Every strategy minus `reference` on `metric`, per user (each user's mean over the
        seeds and repeats, so a user counts once): mean difference, 95% bootstrap interval over
        users, and the share of resamples it wins."""
        table = self.per_user.groupby(["user_id", "strategy"])[metric].mean().unstack()
        rows = []
        for name in table.columns:
            if name != reference:
                test = paired_bootstrap(table[name], table[reference], n_boot=n_boot)
                rows.append({"strategy": name, "vs": reference, "metric": metric, **test})
        return pd.DataFrame(rows)


def evaluation_users(events: pd.DataFrame, config: EvalConfig) -> list[str] | None:
    """The users the protocol may evaluate: a validation or test share, given ids, or all."""
    if not isinstance(config.users, str):
        return sorted(str(u) for u in config.users)
    if config.users == "all":
        return None
    validation, test = split_users(events["user_id"].astype(str).unique(),
                                   config.validation_fraction)
    return validation if config.users == "validation" else test


def make_split(events: pd.DataFrame, config: EvalConfig, seed: int) -> Split:
    """The protocol's split of `events` for `seed`."""
    users = evaluation_users(events, config)
    kind = config.kind
    if config.protocol == "novelty":
        return novelty_split_protocol(events, kind, config.cutoff, users=users)
    if config.protocol == "later-weeks":
        return later_weeks_split(events, kind, config.history_fraction, users=users)
    if config.protocol == "leave-out":
        return leave_out_split(events, kind, config.fraction, seed=seed, users=users)
    if config.protocol == "cold":
        return cold_user_split(events, kind, config.max_known, seed=seed, users=users)
    return apps_from_locations_split(events, seed=seed, holdout_fraction=config.holdout_fraction,
                                     n_targets=config.n_targets, users=users)


def _evaluated(split: Split, config: EvalConfig, seed: int) -> list[str]:
    users = split.users[: config.max_users]
    if not users:
        raise DataError(f"the {split.name} split leaves no user with a hidden {split.kind!r} "
                        "item to find; change the protocol's settings")
    if config.protocol in SEEDED:
        return users
    rng = np.random.default_rng(seed)  # a fixed split: the seed resamples the users
    return [users[i] for i in rng.integers(0, len(users), size=len(users))]


def _rank(recommender: Recommender, users: list[str], split: Split,
          config: EvalConfig) -> dict[str, list[str]]:
    """Top-max(ks) lists per user; with ``use_context`` users are batched by their context."""
    k = max(max(config.ks), config.coverage_k)
    distinct = sorted(set(users))
    if not config.use_context:
        batches = {(): distinct}
    else:
        batches: dict[tuple, list[str]] = {}
        for user in distinct:
            batches.setdefault(tuple(sorted(split.contexts.get(user, {}).items())),
                               []).append(user)
    ranked = {}
    for context, group in batches.items():
        lists = recommender.recommend_batch(group, kind=config.kind, k=k, context=dict(context))
        ranked.update({user: [r.item for r in items] for user, items in lists.items()})
    return ranked


def run_evaluation(events: pd.DataFrame, config: EvalConfig | None = None,
                   progress: Callable[[str], None] | None = None,
                   profiles: ProfileSet | None = None) -> Evaluation:
    """Every strategy of `config` on every seed of its protocol.

    ``profiles``: profiles already written from the split's visible events, reused for every
    seed (only for the fixed-split protocols, novelty and later-weeks).
    """
    config = config or EvalConfig()
    events = validate_events(events)
    require_real(events, "evaluate_recommendations")  # synthetic events never enter a split
    if profiles is not None and config.protocol in SEEDED:
        raise ValueError(f"the {config.protocol} protocol hides other events for every seed; "
                         "its profiles are written per seed, do not pass them")
    say = progress or (lambda _message: None)
    results, per_user, described = [], [], {}
    strategies = {name: make_strategy(strategy, **config.strategy_options.get(name, {}))
                  for name, strategy in _named(config.strategies).items()}  # fitted once per index
    fixed: tuple[Split, Recommender] | None = None
    for seed in config.seeds:
        if fixed is None or config.protocol in SEEDED:
            split = make_split(events, config, seed)
            written = profiles
            if written is None:
                say(f"seed {seed}: profiling {split.visible['user_id'].nunique()} visible "
                    f"histories ({config.profile_backend})")
                written = profile_users(split.visible, backend=config.profile_backend,
                                        users=sorted(events["user_id"].astype(str).unique()))
            fixed = (split, Recommender(written, split.visible, "popular"))  # one shared index
        split, base = fixed
        described[seed] = split.description
        users = _evaluated(split, config, seed)
        profiled = set(base.index.user_ids)
        if not set(users) <= profiled:
            say(f"seed {seed}: {len(set(users) - profiled)} users left out: no profile (failed "
                "or not given)")
            users = [user for user in users if user in profiled]
            if not users:
                raise DataError(f"no user of the {split.name} split has a profile; profile "
                                "the users it evaluates")
        visible = base.index.matrix(config.kind)
        catalogue = visible.items
        popular = dict(zip(catalogue, visible.popularity(), strict=True))
        for name, strategy in strategies.items():
            say(f"seed {seed}: {name} on {len(users)} users ({split.name})")
            recommender = base.with_strategy(strategy)
            ranked = _rank(recommender, users, split, config)
            rows = [{"user_id": user, **ranking_metrics(ranked[user], split.targets[user],
                                                        config.ks)} for user in users]
            frame = pd.DataFrame(rows)
            lists = [ranked[user][: config.coverage_k] for user in sorted(set(users))]
            results.append({"strategy": name, "seed": seed, "users": len(users),
                            **frame.drop(columns="user_id").mean().to_dict(),
                            f"coverage@{config.coverage_k}": coverage(lists, len(catalogue)),
                            f"popularity@{config.coverage_k}": mean_popularity(lists, popular)})
            per_user.append(frame.assign(strategy=name, seed=seed))
    return Evaluation(pd.DataFrame(results), pd.concat(per_user, ignore_index=True), described)


def _named(strategies: Sequence[str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(strategies, dict):
        return dict(strategies)
    return {name: name for name in strategies}


def evaluate_recommendations(events: pd.DataFrame, config: EvalConfig | None = None,
                             progress: Callable[[str], None] | None = None,
                             profiles: ProfileSet | None = None) -> pd.DataFrame:
    """``run_evaluation(...).results``: one row per (strategy, seed)."""
    return run_evaluation(events, config, progress, profiles).results


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds, one row per strategy."""
    metrics = [c for c in results.columns if c not in ("strategy", "seed", "users")]
    grouped = results.groupby("strategy", sort=False)[metrics]
    mean, std = grouped.mean(), grouped.std(ddof=0).fillna(0.0)
    return mean.combine(std, lambda m, s: m.map("{:.4f}".format) + " ± " + s.map("{:.4f}".format))
