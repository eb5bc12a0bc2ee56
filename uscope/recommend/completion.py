"""The ``completion`` strategy: rank intents by U-MASK + DiT's completion of the user's
behaviour tensor (seed paper 000, cold-start completion, eq. 18 and 35).

The user's history becomes X_u with the model's own channel layout; the model completes the
task's target window (``cold_start`` by default: almost nothing revealed, generation guided by
h_u and tau), and each app-category channel is scored by its predicted usage there (median of
the samples, summed over the window and space). It ranks intents (app categories), the
channels the tensor has.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from uscope.data.schema import DataError
from uscope.data.tensor import TensorConfig, build_tensors
from uscope.recommend.strategies import CatalogueIndex, Query, Scored

APP_PREFIX = "app:"


class CompletionStrategy:
    name = "completion"

    def __init__(self, model: str | os.PathLike | Any, slot_minutes: int = 60,
                 task: str = "cold_start", n_samples: int = 4, steps: int = 10, seed: int = 0):
        if isinstance(model, (str, os.PathLike)):
            from generative.completion import UMaskCompleter

            model = UMaskCompleter.load(model)
        self.model = model
        self.slot_minutes, self.task = slot_minutes, task
        self.n_samples, self.steps, self.seed = n_samples, steps, seed
        names = list(model.cfg.channel_names)
        if not names:
            raise ValueError("the completion model was saved without channel names; it cannot "
                             "be matched to a user's behaviour tensor")
        self.channel_names = names
        self.categories = [n[len(APP_PREFIX):] for n in names if n.startswith(APP_PREFIX)]
        if not self.categories:
            raise ValueError(f"the completion model has no app-category channels ({names}); "
                             "the completion strategy ranks app categories")

    def tensor(self, history: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(values (1, C, T, H, W), observed (1, T, H, W)) in the model's layout; events of
        categories the model has no channel for are left out."""
        cfg = self.model.cfg.dit
        shape = (1, cfg.channels, cfg.n_slots, cfg.height, cfg.width)
        history = history[history["app_category"].isin(self.categories)]  # app uses only
        if history.empty:
            return np.zeros(shape, np.float32), np.zeros((1, *shape[2:]), np.float32)
        config = TensorConfig(slot_minutes=self.slot_minutes, n_slots=cfg.n_slots,
                              start=str(history["timestamp"].min().normalize()),
                              app_categories=self.categories)
        batch = build_tensors(history, config)
        if batch.channel_names != self.channel_names or batch.shape != shape:
            raise ValueError(f"the history gives channels {batch.channel_names} of shape "
                             f"{batch.shape}, the model expects {self.channel_names} {shape}")
        return batch.values, batch.observed_mask

    def score(self, index: CatalogueIndex, query: Query, kind: str) -> Scored:
        if kind != "intent":
            raise ValueError("the completion strategy ranks intents (the app-category channels "
                             f"of the behaviour tensor), not {kind!r}")
        if index.column(kind) != "app_category":
            raise DataError("the completion strategy ranks app categories, and no event has "
                            "an app (these intents are place categories)", field="app")
        values, observed = self.tensor(query.history)
        h = query.raw_embedding[None, :]  # (1, D) h_u as the model was trained on
        out = self.model.complete(values, observed, h, task=self.task, n_samples=self.n_samples,
                                  steps=self.steps, seed=self.seed)
        window = out.target_mask[0].numpy()  # (T, H, W)
        usage = (out.median[0].numpy() * window[None]).sum(axis=(1, 2, 3))  # (C,)
        catalogue = index.matrix(kind).items
        scores = np.full(len(catalogue), -np.inf)
        evidence = {}
        for channel, name in enumerate(self.channel_names):
            if name.startswith(APP_PREFIX) and name[len(APP_PREFIX):] in catalogue:
                i = catalogue.index(name[len(APP_PREFIX):])
                scores[i] = float(usage[channel])
                evidence[i] = (f"predicted usage {usage[channel]:.3f} over the "
                               f"{self.task.replace('_', '-')} window")
        return Scored(scores, evidence)
