"""Evaluation harness for novelty recommendation: every strategy side by side, with seeds.

Protocols (seed paper 000, RQ5 and Sec. 7.1.2):
- ``novelty``: split time at a cut-off; each user's history is what came before it, the
  targets are the items the user first used after it (``uscope.data.splits.novelty_split``,
  re-exported here with ``cutoff_time``). Everyone's profile is written from the
  history only, so nothing after the cut-off leaks into the ranking.
- ``coldstart``: recommend apps from location history only. For held-out users the app
  columns are removed (null: their events become place observations, never "Unknown" apps,
  and events with no place are dropped); every profile is written from the location-only view
  of the history (the source domain), and the targets are the held-out user's ``n_targets``
  most used apps (the items of "highest engagement frequency", ``uses``-weighted). It needs
  data with both apps and places.

Location-only data (no app at all) is evaluated with ``novelty`` on kinds "place", "location"
or "intent" (= place category); kind "app" raises naming the missing ``app`` field.
Seeds resample the evaluated users (bootstrap; for ``coldstart`` they also choose who is held
out), so the spread says how much the figures depend on which users were evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uscope.data.items import item_counts, require_items
from uscope.data.schema import DataError, has_places, recorded_place, validate_events
from uscope.data.splits import cutoff_time, novelty_split, require_real
from uscope.profile import ProfileSet, profile_users
from uscope.recommend.metrics import ranking_metrics
from uscope.recommend.recommender import Recommender

__all__ = ["EvalConfig", "cutoff_time", "evaluate_recommendations", "location_only",
           "novelty_split", "summarise"]


@dataclass
class EvalConfig:
    kind: str = "app"
    protocol: str = "novelty"  # "novelty" | "coldstart"
    strategies: Sequence[str] = ("popular", "neighbours")
    ks: Sequence[int] = (1, 3, 5)
    seeds: Sequence[int] = (0, 1, 2)
    cutoff: str | float = 0.6  # novelty: a timestamp, or a fraction of the data's time span
    holdout_fraction: float = 0.3  # coldstart: share of users whose apps are hidden
    n_targets: int = 5  # coldstart: how many of the user's top apps are the targets
    profile_backend: str = "heuristic"
    max_users: int | None = None  # evaluate at most this many users (first by id), all if None
    users: Sequence[str] | None = None  # novelty: evaluate only these users (others still vote)
    strategy_options: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.protocol not in ("novelty", "coldstart"):
            raise ValueError(f"protocol must be 'novelty' or 'coldstart', got {self.protocol!r}")
        if self.protocol == "coldstart" and self.kind != "app":
            raise ValueError("the coldstart protocol recommends apps (kind='app')")


def location_only(events: pd.DataFrame) -> pd.DataFrame:
    """The source-domain view: places and times kept, apps and their traffic removed (null,
    not "Unknown": the events become place observations); events with no place are dropped."""
    hidden = events[recorded_place(events)].copy()
    hidden[["app", "app_category", "traffic_bytes"]] = None
    return validate_events(hidden, source="location_only")


def _bootstrap(users: list[str], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [users[i] for i in rng.integers(0, len(users), size=len(users))]


def _score(recommender: Recommender, users: list[str], targets: dict[str, set[str]],
           config: EvalConfig) -> dict[str, float]:
    rows = []
    for user in users:
        ranked = [r.item for r in recommender.recommend(user, kind=config.kind, k=max(config.ks))]
        rows.append(ranking_metrics(ranked, targets[user], config.ks))
    return pd.DataFrame(rows).mean().to_dict()


def evaluate_recommendations(events: pd.DataFrame, config: EvalConfig | None = None,
                             progress: Callable[[str], None] | None = None,
                             profiles: ProfileSet | None = None) -> pd.DataFrame:
    """One row per (strategy, seed) with the mean of every metric over the evaluated users.

    ``profiles``: profiles already written from the protocol's inputs (the novelty history,
    or the location-only view for coldstart), to share one profiling run between kinds.
    """
    config = config or EvalConfig()
    events = validate_events(events)
    require_real(events, "evaluate_recommendations")  # synthetic events never enter a split
    say = progress or (lambda _message: None)
    results = []
    if config.protocol == "novelty":
        history, targets = novelty_split(events, config.kind, cutoff_time(events, config.cutoff))
        allowed = set(targets) if config.users is None else set(targets) & set(config.users)
        users = sorted(allowed)[: config.max_users]
        if not users:
            raise DataError("no user uses a new item after the cut-off; move the cut-off")
        if profiles is None:
            say(f"profiling {history['user_id'].nunique()} histories ({config.profile_backend})")
            profiles = profile_users(history, backend=config.profile_backend)
        recommenders = {name: Recommender(profiles, history, name,
                                          **config.strategy_options.get(name, {}))
                        for name in config.strategies}
        for seed in config.seeds:
            sample = _bootstrap(users, seed)
            for name, recommender in recommenders.items():
                say(f"seed {seed}: {name} on {len(sample)} users")
                results.append({"strategy": name, "seed": seed, "users": len(sample),
                                **_score(recommender, sample, targets, config)})
        return pd.DataFrame(results)

    require_items(events, "app")  # the targets are apps
    if not has_places(events):
        raise DataError("the coldstart protocol needs places (location_id, location_category "
                        "or coordinates), and no event has one", field="location_id")
    everyone = sorted(events["user_id"].unique().tolist())
    if profiles is None:
        say(f"profiling location-only views of {len(everyone)} users")
        profiles = profile_users(location_only(events), backend=config.profile_backend,
                                 users=everyone)  # a user seen at no place: a cold start
    for seed in config.seeds:
        rng = np.random.default_rng(seed)
        held = set(rng.choice(everyone, size=max(1, int(len(everyone) * config.holdout_fraction)),
                              replace=False).tolist())
        hidden = events["user_id"].isin(held)
        visible = pd.concat([events[~hidden], location_only(events[hidden])], ignore_index=True)
        targets = {user: set(item_counts(rows, "app").index[: config.n_targets])
                   for user, rows in events[hidden].groupby("user_id")}
        targets = {user: items for user, items in targets.items() if items}
        users = sorted(targets)[: config.max_users]
        for name in config.strategies:
            recommender = Recommender(profiles, visible, name,
                                      **config.strategy_options.get(name, {}))
            say(f"seed {seed}: {name} on {len(users)} held-out users")
            results.append({"strategy": name, "seed": seed, "users": len(users),
                            **_score(recommender, users, targets, config)})
    return pd.DataFrame(results)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds, one row per strategy."""
    metrics = [c for c in results.columns if c not in ("strategy", "seed", "users")]
    grouped = results.groupby("strategy", sort=False)[metrics]
    mean, std = grouped.mean(), grouped.std(ddof=0).fillna(0.0)
    return mean.combine(std, lambda m, s: m.map("{:.4f}".format) + " ± " + s.map("{:.4f}".format))
