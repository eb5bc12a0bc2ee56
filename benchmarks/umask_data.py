"""Data preparation for bench_umask.py: tensors and user embeddings for netfp and a simulation.

netfp (real): 1,203 devices, one day, hourly (T = 24), app-category channels only, no location.
Its log is complete for the day, so an hour without a row is a true zero: tensors are built with
``observed="all"``. The user embedding h_u summarises the first 12 hours only (the history window
of the long-term and cold-start tasks), so it never sees a target slot.
Simulated (labelled simulated everywhere): ``uscope.data.simulate`` users with locations and
traffic, hourly slots over two days.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from generative.standin import histogram_embedding

NETFP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "netfp" / "data0117_dev.csv"


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


def _embeddings(events: pd.DataFrame, bt, history_slots: int, slot_minutes: int,
                kind: str) -> tuple[np.ndarray, str]:
    start = pd.Timestamp(bt.start)
    cutoff = start + pd.Timedelta(minutes=slot_minutes * history_slots)
    if kind == "uscope":
        try:
            import uscope

            history = events[events["timestamp"] < cutoff]
            profiles = uscope.profile_users(history, backend="heuristic", users=bt.user_ids)
            order = {u: i for i, u in enumerate(profiles.user_ids)}
            emb = profiles.embeddings()[[order[u] for u in bt.user_ids]]
            if np.isfinite(emb).all():
                return emb.astype(np.float32), ("uscope.profile_users(heuristic) embeddings of "
                                                f"the first {history_slots} slots")
        except Exception as exc:  # noqa: BLE001 - reported in the table, fallback below
            print(f"profile_users unavailable ({type(exc).__name__}: {exc}); using the stand-in")
    emb = histogram_embedding(bt.values, bt.channel_groups["app"], history_slots)
    return emb, (f"stand-in: random projection of app-category shares and slot activity of the "
                 f"first {history_slots} slots (generative.standin)")


def netfp(embedding: str = "uscope") -> BenchData:
    from uscope.data import TensorConfig, build_tensors, read_netfp

    events, _ = read_netfp(NETFP)
    bt = build_tensors(events, TensorConfig(slot_minutes=60, n_slots=24, observed="all"))
    h, how = _embeddings(events, bt, 12, 60, embedding)
    return BenchData("netfp (real)", bt.values, bt.observed_mask, h, bt.channel_groups,
                     bt.channel_names, how, season=24)


def simulated(n_users: int = 400, embedding: str = "standin", seed: int = 0) -> BenchData:
    from uscope.data import TensorConfig, build_tensors, simulate

    pop = simulate(n_users=n_users, days=2, seed=seed)
    bt = build_tensors(pop.events, TensorConfig(slot_minutes=60, n_slots=48, observed="all"))
    h, how = _embeddings(pop.events, bt, 24, 60, embedding)
    return BenchData("SIMULATED population (uscope.data.simulate)", bt.values, bt.observed_mask,
                     h, bt.channel_groups, bt.channel_names, how, season=24)
