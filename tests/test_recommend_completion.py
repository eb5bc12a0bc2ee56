"""The completion strategy: a (tiny, briefly trained) U-MASK + DiT ranks intents from a user's
behaviour tensor on real netfp histories; the model round-trips through save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uscope.data import TensorConfig, build_tensors
from uscope.profile import profile_users
from uscope.recommend import Recommender
from uscope.recommend.completion import CompletionStrategy

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def netfp_slice(netfp_events):
    events, _ = netfp_events
    users = sorted(events["user_id"].unique())[:24]
    part = events[events["user_id"].isin(users)]
    return part, profile_users(part)


@pytest.fixture(scope="module")
def completer(netfp_slice, tmp_path_factory):
    from generative.completion import UMaskCompleter
    from generative.config import DIT_PRESETS
    from generative.train import TrainConfig, fit

    events, profiles = netfp_slice
    batch = build_tensors(events, TensorConfig(slot_minutes=60, n_slots=24))
    _, c, t, height, width = batch.shape
    cfg = DIT_PRESETS["umask-tiny"](channels=c, n_slots=t, height=height, width=width)
    cfg.channel_names, cfg.channel_groups = batch.channel_names, batch.channel_groups
    torch.manual_seed(0)
    model = UMaskCompleter(cfg)
    order = [profiles.user_ids.index(u) for u in batch.user_ids]
    fit(model, batch.values, batch.observed_mask, profiles.embeddings()[order],
        TrainConfig(steps=15, batch_size=8, log_every=5))
    return model.save(tmp_path_factory.mktemp("umask") / "model")


def test_completion_ranks_unused_intents(netfp_slice, completer):
    events, profiles = netfp_slice
    rec = Recommender(profiles, events, "completion", model=completer, n_samples=2, steps=4)
    user = profiles.user_ids[0]
    used = set(events.loc[events["user_id"] == user, "app_category"])
    items = rec.recommend(user, kind="intent", k=3, explain=True)
    assert 0 < len(items) <= 3
    assert not {i.item for i in items} & used
    assert all(np.isfinite(i.score) and "predicted usage" in i.rationale for i in items)
    with pytest.raises(ValueError, match="ranks intents"):
        rec.recommend(user, kind="app")


def test_completion_strategy_tensor_matches_model_layout(netfp_slice, completer):
    events, _ = netfp_slice
    strategy = CompletionStrategy(completer)
    history = events[events["user_id"] == events["user_id"].iloc[0]]
    values, observed = strategy.tensor(history)
    assert values.shape[1] == len(strategy.channel_names) and observed.shape[0] == 1
    empty_values, empty_observed = strategy.tensor(history.iloc[:0])
    assert empty_values.sum() == 0 and empty_observed.sum() == 0
