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
from dataclasses import dataclass

import numpy as np
import pandas as pd
from _data import NEEDS, data_argv, load_for_benchmark, tensor_config

from generative.standin import histogram_embedding
from uscope.data.datasets import LoadedDataset

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
    season: int                 # slots per day
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
