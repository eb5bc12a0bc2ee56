"""Data preparation for bench_umask.py: tensors and user embeddings of a registered dataset.

Tensors are hourly (or the dataset's own slot when longer) over its first two days (T = 48;
netfp has one day, T = 24), the layout of the paper's two-day windows. Logs that record every
use of the span (netfp: a device's whole day; the simulator) mark every slot observed, so an
hour without a row is a true zero (``observed="all"``); check-ins and GPS fixes only observe
the slots that hold a row. The user embedding h_u summarises the first half of the slots only
(the history window of the long-term and cold-start tasks), so it never sees a target slot.
Data labelled SIMULATED (``LoadedDataset.label``) is named so in every table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from _data import NEEDS, data_argv, load_for_benchmark, tensor_config

from generative.standin import histogram_embedding
from uscope.data.datasets import LoadedDataset
from uscope.data.tensor import fit_place_clusters

SIMULATED = "simulated"
COMPLETE_LOGS = {"netfp", SIMULATED}  # every use of the span is recorded
DAYS = 2


@dataclass
class BenchData:
    name: str
    values: np.ndarray          # (N, C, T, H, W)
    observed: np.ndarray        # (N, T, H, W)
    h: np.ndarray               # (N, 384)
    groups: dict[str, list[int]]
    channel_names: list[str]
    embedding: str              # how h was made
    season: int                 # slots per season of seasonal naive (a day; months: a week)
    key: str = ""               # short name for files
    h_kind: str = "uscope"      # the embedding option that made h ("uscope" or "standin")


def _embeddings(events: pd.DataFrame, bt, history_slots: int, slot_minutes: int,
                kind: str) -> tuple[np.ndarray, str]:
    start = pd.Timestamp(bt.start)
    cutoff = start + pd.Timedelta(minutes=slot_minutes * history_slots)
    if kind == "uscope":
        try:
            from generative.conditioning import align_embeddings
            from uscope.profile import profile_users

            history = events[events["timestamp"] < cutoff]
            profiles = profile_users(history, backend="heuristic", users=bt.user_ids)
            emb = align_embeddings(profiles, bt.user_ids)
            if np.isfinite(emb).all():
                return emb, ("uscope.profile_users(heuristic) embeddings of the first "
                             f"{history_slots} slots")
        except Exception as exc:  # noqa: BLE001 - reported in the table, fallback below
            print(f"profile_users unavailable ({type(exc).__name__}: {exc}); using the stand-in")
    channels = bt.channel_groups.get("app") or list(range(bt.values.shape[1]))
    emb = histogram_embedding(bt.values, channels, history_slots)
    return emb, (f"stand-in: random projection of channel shares and slot activity of the "
                 f"first {history_slots} slots (generative.standin)")


def bench_data(data: LoadedDataset, embedding: str = "uscope") -> BenchData:
    """Tensors, h_u and channel groups of ``data`` for the U-MASK benchmark."""
    from uscope.data import build_tensors

    observed = "all" if data.spec.name in COMPLETE_LOGS else "active_slots"
    config = tensor_config(data, days=DAYS, observed=observed)
    if config.slot_minutes < 60:
        config.n_slots = config.n_slots * config.slot_minutes // 60
        config.slot_minutes = 60
    bt = build_tensors(data.events, config)
    h, how = _embeddings(data.events, bt, config.n_slots // 2, config.slot_minutes, embedding)
    return BenchData(data.label, bt.values, bt.observed_mask, h, bt.channel_groups,
                     bt.channel_names, how, season=24 * 60 // config.slot_minutes,
                     key=data.spec.name, h_kind=embedding)


def worker_data(data: BenchData, args) -> list[str]:
    """The data options that make a worker process load ``data`` again."""
    extra = data.key == SIMULATED and args.simulated and args.dataset != SIMULATED
    return [*data_argv(args, SIMULATED if extra else None), "--embedding", data.h_kind]


def load_data(args, dataset: str | None = None) -> tuple[BenchData, object]:
    """The chosen data (``dataset``: another registered one, through the same options) as
    tensors and h_u; the extra simulated run keeps the stand-in h_u of its section."""
    if dataset is not None:
        args = argparse.Namespace(**{**vars(args), "dataset": dataset, "events": None,
                                     "embedding": "standin"})
    loaded = load_for_benchmark(args, NEEDS["bench_umask"][0], "bench_umask", options={
        SIMULATED: {"n_users": args.sim_users, "days": 2}})
    return bench_data(loaded, args.embedding), loaded


@dataclass
class Horizon:
    """The long-horizon layout of ``bench_umask_months``: weeks of slots, a spatial
    tessellation (eq. 1) and the three tasks in days and weeks."""

    weeks: int = 8
    slot_hours: int = 3
    spatial: str = "clusters"          # "latlon" (a lat/lon grid) or "clusters" (k-means)
    grid: tuple[int, int] = (3, 3)
    short_days: int = 1                # short term: the next day
    long_weeks: int = 2                # long term and cold start: the last weeks
    cold_days: float = 3.0             # cold start: evidence worth this many days

    def __post_init__(self) -> None:
        if self.slot_hours < 1 or 24 % self.slot_hours:
            raise ValueError(f"slot_hours must divide a day, got {self.slot_hours}")
        if not 0 < self.long_weeks < self.weeks:
            raise ValueError(f"long_weeks {self.long_weeks} must be in (0, {self.weeks})")

    @property
    def slots_per_day(self) -> int:
        return 24 // self.slot_hours

    @property
    def n_slots(self) -> int:
        return self.weeks * 7 * self.slots_per_day

    @property
    def long_slots(self) -> int:
        """The hidden last weeks of long term and cold start, in slots."""
        return self.long_weeks * 7 * self.slots_per_day

    @property
    def history_slots(self) -> int:
        """The slots before them: what h_u and the place clusters may see."""
        return self.n_slots - self.long_slots

    def tasks(self):
        """Short term, long term and cold start over this layout (generative.config)."""
        from generative.config import TaskConfig

        short = self.short_days * self.slots_per_day
        long = self.long_slots
        history_days = (self.weeks - self.long_weeks) * 7
        cold = self.cold_days / history_days * self.history_slots / self.n_slots
        return [TaskConfig("short_term", horizon=short, init_ratio=0.75, recency=6.0),
                TaskConfig("long_term", horizon=long, init_ratio=0.45, recency=2.0),
                TaskConfig("cold_start", horizon=long, init_ratio=cold, max_ratio=1.5 * cold,
                           cold=True)]


def months_data(data: LoadedDataset, layout: Horizon, embedding: str = "uscope") -> BenchData:
    """Tensors over the first ``layout.weeks`` weeks of every user whose last event falls in
    week ``layout.weeks`` or later.

    Slot 0 is the Monday of the earliest event; a user's weeks are all observed (check-in
    logs whose weeks run back to back from that Monday, as the Foursquare reader lays them: a
    slot without a check-in is a zero); other users are left out and counted. Cells come from
    coordinates, so events without them (StudentLife's app uses) are set aside and counted in
    the name. Place clusters are fitted on the history window only, so no target-week place
    shapes the cells; h_u too sees only the history window.
    """
    from uscope.data import TensorConfig, build_tensors

    placed = data.events["latitude"].notna() & data.events["longitude"].notna()
    events = data.events[placed]
    start = events["timestamp"].min().normalize()
    start -= pd.Timedelta(days=start.weekday())
    weeks_seen = (events.groupby("user_id")["timestamp"].max() - start).dt.days // 7 + 1
    keep = weeks_seen.index[weeks_seen >= layout.weeks]
    if len(keep) < 10:
        raise SystemExit(f"{data.label}: only {len(keep)} users span {layout.weeks} weeks")
    events = events[events["user_id"].isin(keep)]
    history = layout.history_slots
    centres = None
    if layout.spatial == "clusters":
        past = events[events["timestamp"] < start + pd.Timedelta(hours=layout.slot_hours
                                                                 * history)]
        centres = fit_place_clusters(past["latitude"].to_numpy(), past["longitude"].to_numpy(),
                                     layout.grid[0] * layout.grid[1])
    config = TensorConfig(slot_minutes=60 * layout.slot_hours, n_slots=layout.n_slots,
                          start=start.isoformat(), spatial=layout.spatial, grid=layout.grid,
                          cluster_centres=centres, observed="all")
    bt = build_tensors(events, config)
    h, how = _embeddings(events, bt, history, config.slot_minutes, embedding)
    dropped = len(weeks_seen) - len(keep)
    name = (f"{data.label} ({dropped} users with fewer than {layout.weeks} weeks left out"
            + (f"; {int((~placed).sum()):,} events without coordinates set aside)"
               if not placed.all() else ")"))
    return BenchData(name, bt.values, bt.observed_mask, h, bt.channel_groups, bt.channel_names,
                     how, season=7 * layout.slots_per_day, key=data.spec.name,
                     h_kind=embedding)


def noise_embedding(h: np.ndarray, seed: int) -> np.ndarray:
    """RQ4 control: h_u replaced by Gaussian noise with the same per-dimension mean and std,
    drawn independently of behaviour (one fixed vector per user)."""
    rng = np.random.default_rng(10_000 + seed)
    return (h.mean(0) + h.std(0) * rng.standard_normal(h.shape)).astype(np.float32)


def save_bench_data(data: BenchData, path: str) -> None:
    """``data`` as one compressed .npz (arrays, and the rest as JSON), for ``load_bench_data``
    on a machine without the dataset or the encoder (a GPU machine running the anchors)."""
    meta = {k: getattr(data, k) for k in ("name", "groups", "channel_names", "embedding",
                                          "season", "key", "h_kind")}
    np.savez_compressed(path, values=data.values, observed=data.observed, h=data.h,
                        meta=np.array(json.dumps(meta)))


def load_bench_data(path: str) -> BenchData:
    """The ``BenchData`` that ``save_bench_data`` wrote to ``path``."""
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        return BenchData(values=f["values"], observed=f["observed"], h=f["h"], **meta)
