"""`uscope complete` and the stand-in embedding, end to end on a tiny saved model."""

from __future__ import annotations

import numpy as np
import torch
from typer.testing import CliRunner

from generative.completion import UMaskCompleter
from generative.config import DIT_PRESETS
from generative.standin import histogram_embedding
from uscope.cli import app
from uscope.data import BehaviourTensors, TensorConfig


def _tensors(n: int = 6, c: int = 3, t: int = 12) -> BehaviourTensors:
    rng = np.random.default_rng(0)
    values = (rng.random((n, c, t, 1, 1)) ** 3).astype(np.float32)
    return BehaviourTensors(values=values, observed_mask=np.ones((n, t, 1, 1), np.float32),
                            user_ids=[f"u{i}" for i in range(n)],
                            channel_names=[f"app:c{i}" for i in range(c)], cell_names=["anywhere"],
                            scale=np.ones(c), start="2017-01-17T00:00:00",
                            config=TensorConfig(slot_minutes=120, n_slots=t, observed="all"),
                            channel_groups={"app": list(range(c))})


def test_histogram_embedding_is_deterministic_unit_norm():
    v = _tensors().values
    a = histogram_embedding(v, [0, 1, 2], 6, dim=32)
    assert a.shape == (6, 32) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, histogram_embedding(v, [0, 1, 2], 6, dim=32))
    later = v.copy()
    later[:, :, 6:] = 0                        # slots after the history window do not matter
    assert np.array_equal(a, histogram_embedding(later, [0, 1, 2], 6, dim=32))


def test_cli_complete_writes_samples_median_spread(tmp_path):
    bt = _tensors()
    bt.save(tmp_path / "x.npz")
    torch.manual_seed(0)
    model = UMaskCompleter(DIT_PRESETS["umask-tiny"](channels=3, n_slots=12, user_dim=384,
                                                     train_steps=20))
    model.save(tmp_path / "model")
    runner = CliRunner()
    out = tmp_path / "c.npz"
    res = runner.invoke(app, ["complete", "--model", str(tmp_path / "model"), "--tensors",
                              str(tmp_path / "x.npz"), "--out", str(out), "--samples", "3",
                              "--steps", "4", "--task", "long_term"])
    assert res.exit_code == 0, res.output
    z = np.load(out)
    assert z["samples"].shape == (3, 6, 3, 12, 1, 1)
    assert z["median"].shape == z["spread"].shape == (6, 3, 12, 1, 1)
    ev = z["evidence_mask"].astype(bool)[None, :, None].repeat(3, 0).repeat(3, 2)
    assert np.array_equal(z["samples"][ev], np.broadcast_to(bt.values, z["samples"].shape)[ev])
    bad = runner.invoke(app, ["complete", "--model", str(tmp_path / "nope"), "--tensors",
                              str(tmp_path / "x.npz"), "--out", str(out)])
    assert bad.exit_code == 2 and "not found" in bad.output
