"""h_u from a ProfileSet, aligned by user id (``generative.conditioning``): `uscope complete
--profiles` and the intent recipe, with profiles written by the real heuristic pipeline
(`uscope profile --backend heuristic`: heuristic writer + the bundled MiniLM encoder) on a
slice of the real netfp data."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from generative.completion import UMaskCompleter
from generative.conditioning import align_embeddings, missing_users
from generative.config import DIT_PRESETS
from uscope.cli import app
from uscope.data import DataError, TensorConfig, build_tensors, save_events
from uscope.profile import ProfileSet

REPO = Path(__file__).resolve().parents[1]
RUNNER = CliRunner()


@pytest.fixture(scope="module")
def work(netfp_events, tmp_path_factory):
    """Events of 12 real devices, their tensors, a ProfileSet from `uscope profile`, and a
    tiny saved completion model."""
    events, _ = netfp_events
    tmp = tmp_path_factory.mktemp("conditioning")
    part = events[events["user_id"].isin(sorted(events["user_id"].unique())[:12])]
    events_path = save_events(part, tmp / "events.parquet")
    result = RUNNER.invoke(app, ["profile", str(events_path), "--out", str(tmp / "p.parquet"),
                                 "--backend", "heuristic", "--no-progress"])
    assert result.exit_code == 0, result.output
    batch = build_tensors(part, TensorConfig(slot_minutes=120, n_slots=12, observed="all"))
    batch.save(tmp / "x.npz")
    torch.manual_seed(0)
    _, c, t, h, w = batch.shape
    model = UMaskCompleter(DIT_PRESETS["umask-tiny"](channels=c, n_slots=t, height=h, width=w,
                                                     user_dim=384, train_steps=20))
    model.save(tmp / "model")
    return tmp, part, batch


def complete(tmp: Path, *extra: str) -> tuple[int, str, Path]:
    out = tmp / f"c{abs(hash(extra))}.npz"
    result = RUNNER.invoke(app, ["complete", "--model", str(tmp / "model"), "--tensors",
                                 str(tmp / "x.npz"), "--out", str(out), "--samples", "2",
                                 "--steps", "2", *extra])
    return result.exit_code, result.output, out


def test_align_embeddings_follows_user_ids_not_file_order(work):
    tmp, _, batch = work
    profiles = ProfileSet.load(tmp / "p.parquet")
    shuffled = ProfileSet(profiles.frame.iloc[::-1].reset_index(drop=True))
    order = list(reversed(batch.user_ids))
    h = align_embeddings(shuffled, order)
    by_id = dict(zip(profiles.user_ids, profiles.embeddings()))
    assert h.shape == (len(order), 384) and h.dtype == np.float32
    assert all(np.array_equal(h[i], by_id[u]) for i, u in enumerate(order))
    with pytest.raises(DataError, match="1 of 13 users have no profile: 'nobody'"):
        align_embeddings(profiles, [*order, "nobody"])
    filled = align_embeddings(profiles, ["nobody", *order], missing="mean")
    assert np.allclose(filled[0], h.mean(axis=0), atol=1e-6)
    assert missing_users(profiles, ["nobody", order[0]]) == ["nobody"]


def test_cli_complete_reads_h_u_from_a_profileset_by_user_id(work):
    tmp, _, batch = work
    profiles = ProfileSet.load(tmp / "p.parquet")
    ProfileSet(profiles.frame.iloc[::-1].reset_index(drop=True)).save(tmp / "reversed.parquet")
    np.save(tmp / "h.npy", align_embeddings(profiles, batch.user_ids))
    code, output, from_profiles = complete(tmp, "--profiles", str(tmp / "reversed.parquet"))
    assert code == 0, output
    assert f"h_u of {len(batch.user_ids)} users from" in output and "stand-in" not in output
    code, output, from_npy = complete(tmp, "--embeddings", str(tmp / "h.npy"))
    assert code == 0, output
    a, b = np.load(from_profiles), np.load(from_npy)
    assert list(a["user_ids"]) == batch.user_ids
    assert np.array_equal(a["samples"], b["samples"])  # same h_u row for every user


def test_cli_complete_names_users_without_a_profile(work):
    tmp, _, batch = work
    profiles = ProfileSet.load(tmp / "p.parquet")
    dropped = batch.user_ids[3]
    ProfileSet(profiles.frame[profiles.frame["user_id"] != dropped]).save(tmp / "part.parquet")
    code, output, _ = complete(tmp, "--profiles", str(tmp / "part.parquet"))
    assert code == 2 and dropped in output and "have no profile" in output
    code, output, _ = complete(tmp, "--profiles", str(tmp / "part.parquet"),
                               "--missing-profiles", "mean")
    assert code == 0 and "1 without a profile get the mean h_u" in output
    code, output, _ = complete(tmp, "--profiles", str(tmp / "part.parquet"), "--embeddings",
                               str(tmp / "h.npy"))
    assert code == 2 and "not both" in output


def recipe():
    spec = importlib.util.spec_from_file_location("train_intent", REPO / "recipes/train_intent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_intent_recipe_conditions_on_profiles(work):
    tmp, _, _ = work
    tiny = {"kind": "gpt2", "n_layer": 1, "n_embd": 16, "n_head": 2, "max_positions": 16}
    common = {"events": str(tmp / "events.parquet"), "profiles": str(tmp / "p.parquet"),
              "data": {"input_length": 6}, "protocol": {"n_individual": 3, "seed": 0},
              "model": {"embed_dim": 8, "attention_dim": 8, "mlp_hidden": 16}}
    configs = {
        "population": {**common, "out": str(tmp / "teacher"), "backbone": tiny,
                       "train": {"steps": 2, "batch_size": 8}},
        "distill": {**common, "teacher": str(tmp / "teacher"), "out": str(tmp / "student"),
                    "backbone": tiny, "train": {"steps": 2, "batch_size": 8}},
        "individual": {**common, "student": str(tmp / "student"),
                       "individual": {"unlearn_steps": 1, "finetune_steps": 1}},
    }
    module = recipe()
    for stage, config in configs.items():
        path = tmp / f"{stage}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        module.main([stage, "--config", str(path)])
    saved = json.loads((tmp / "student" / "intent_model.json").read_text())
    assert saved["model_config"]["user_embedding_dim"] == 384
    assert (tmp / "student" / "individual_metrics.json").exists()
    events = str(tmp / "events.parquet")
    predict = ["intent", "predict", events, "--model", str(tmp / "student"), "--json"]
    result = RUNNER.invoke(app, [*predict, "--profiles", str(tmp / "p.parquet")])
    assert result.exit_code == 0, result.output
    assert sum(line.startswith("{") for line in result.stdout.splitlines()) == 12
    result = RUNNER.invoke(app, predict)
    assert result.exit_code == 2 and "pass --profiles" in result.output
    no_profiles = {k: v for k, v in configs["individual"].items() if k != "profiles"}
    path = tmp / "no_profiles.yaml"
    path.write_text(yaml.safe_dump(no_profiles), encoding="utf-8")
    with pytest.raises(SystemExit, match="conditions on h_u"):
        module.main(["individual", "--config", str(path)])


def test_bench_intent_reads_the_same_profiles(work):
    """benchmarks/bench_intent.py --profiles: every model conditions on the aligned h_u."""
    tmp, _, _ = work
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_intent.py"), "--quick", "--no-write",
         "--max-users", "12", "--profiles", str(tmp / "p.parquet")], check=False, cwd=tmp,
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Every model reads h_u of" in done.stdout
