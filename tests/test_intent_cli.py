"""recipes/train_intent.py (three stages) and `uscope intent predict`, end to end on a slice of
the real netfp data with tiny GPT-2 backbones."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from uscope.cli import app
from uscope.data import save_events

REPO = Path(__file__).resolve().parents[1]


def recipe():
    spec = importlib.util.spec_from_file_location("train_intent", REPO / "recipes/train_intent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained_dir(netfp_events, tmp_path_factory):
    events, _ = netfp_events
    tmp = tmp_path_factory.mktemp("intent")
    part = events[events["user_id"].isin(events["user_id"].unique()[:40])]
    path = save_events(part, tmp / "events.parquet")
    common = {"events": str(path), "data": {"input_length": 8},
              "protocol": {"n_individual": 8, "seed": 0},
              "model": {"embed_dim": 8, "attention_dim": 8, "mlp_hidden": 16,
                        "query_time": True}}
    tiny = {"kind": "gpt2", "n_layer": 1, "n_embd": 16, "n_head": 2, "max_positions": 16}
    configs = {
        "population": {**common, "out": str(tmp / "teacher"), "backbone": tiny,
                       "train": {"steps": 4, "batch_size": 8}},
        "distill": {**common, "teacher": str(tmp / "teacher"), "out": str(tmp / "student"),
                    "backbone": tiny, "train": {"steps": 4, "batch_size": 8}},
        "individual": {**common, "student": str(tmp / "student"),
                       "individual": {"unlearn_steps": 2, "finetune_steps": 2}},
    }
    module = recipe()
    for stage, config in configs.items():
        config_path = tmp / f"{stage}.yaml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        module.main([stage, "--config", str(config_path)])
    return tmp, path, part


def test_recipe_stages_write_models_adapters_and_metrics(trained_dir):
    tmp, _, _ = trained_dir
    assert (tmp / "teacher" / "intent_model.json").exists()
    meta = json.loads((tmp / "student" / "intent_model.json").read_text())["meta"]
    assert meta["stage"] == "distill" and len(meta["p_out"]) == len(meta["p_pop"])
    assert (tmp / "student" / "adapters.safetensors").exists()
    metrics = json.loads((tmp / "student" / "individual_metrics.json").read_text())
    assert {"Prec_m", "Rec_m", "NDCG@5", "backbone"} <= set(metrics)
    assert "random init" in metrics["backbone"]


def test_cli_predict(trained_dir):
    tmp, path, part = trained_dir
    runner = CliRunner()
    user = str(part["user_id"].iloc[0])
    result = runner.invoke(app, ["intent", "predict", str(path), "--model", str(tmp / "student"),
                                 "--user", user, "--top-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    line = json.loads(next(x for x in result.stdout.splitlines() if x.startswith("{")))
    assert line["user_id"] == user and len(line["intents"]) == 2
    assert line["intents"][0]["p"] >= line["intents"][1]["p"]
    result = runner.invoke(app, ["intent", "predict", str(path), "--model", str(tmp / "student"),
                                 "--user", "nobody"])
    assert result.exit_code == 2 and "nobody" in result.output
    at = {}
    for when in ("2017-01-17 08:30", "2017-01-17 21:30"):
        result = runner.invoke(app, ["intent", "predict", str(path), "--model",
                                     str(tmp / "student"), "--user", user, "--at", when, "--json"])
        assert result.exit_code == 0, result.output
        at[when] = json.loads(next(x for x in result.stdout.splitlines() if x.startswith("{")))
    assert at["2017-01-17 08:30"]["intents"] != at["2017-01-17 21:30"]["intents"]  # time is read
    result = runner.invoke(app, ["intent", "predict", str(path), "--model", str(tmp / "student"),
                                 "--at", "teatime"])
    assert result.exit_code == 2 and "--at 'teatime'" in result.output
    result = runner.invoke(app, ["intent", "predict", str(path), "--model", str(tmp)])
    assert result.exit_code == 2 and "intent_model.json" in result.output
