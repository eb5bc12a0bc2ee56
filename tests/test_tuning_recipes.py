"""The fine-tuning recipes end to end, as real subprocesses on a SIMULATED population:
generate_cot.py (real SmolLM2 teacher) -> `accelerate launch --cpu recipes/sft.py`;
build_preferences.py -> `accelerate launch --cpu recipes/dpo.py` (fresh adapter, and from the
SFT adapter); the saved adapters reload and generate, in the profiling backend and the llm
recommendation strategy."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from uscope.data import save_events
from uscope.tuning.formats import read_jsonl, validate_messages, validate_preferences
from uscope.tuning.training import PROJECTION_MODULES

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).parent / "accelerate"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM":
       "false", "PYTHONWARNINGS": "ignore::FutureWarning"}


def run(*command: str | Path) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], check=False, cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def first_loss(output_dir: Path) -> float:
    (state,) = output_dir.glob("checkpoint-*/trainer_state.json")
    return json.loads(state.read_text())["log_history"][0]["loss"]


@pytest.fixture(scope="module")
def work(tmp_path_factory, simulated):
    root = tmp_path_factory.mktemp("tuning")
    save_events(simulated.events, root / "events.parquet")
    return root


@pytest.fixture(scope="module")
def cot(work):
    out = work / "cot"
    run(sys.executable, "recipes/generate_cot.py", "--events", work / "events.parquet",
        "--out", out, "--mode", "sample", "--tasks", "app", "intent", "--max-users", "3",
        "--cutoff", "0.3", "--max-new-tokens", "24", "--threads", "1")
    return out


@pytest.fixture(scope="module")
def sft(work, cot):
    out = work / "sft"
    run(ACCELERATE, "launch", "--cpu", "recipes/sft.py",
        "--config", "recipes/smollm2-135m/sft/config_lora.yaml", "--dataset_name", cot,
        "--output_dir", out, "--max_steps", "2", "--per_device_train_batch_size", "2",
        "--learning_rate", "1e-3", "--warmup_steps", "0", "--logging_steps", "1")
    return out


@pytest.fixture(scope="module")
def prefs(work):
    out = work / "prefs"
    run(sys.executable, "recipes/build_preferences.py", "--events", work / "events.parquet",
        "--out", out, "--chosen-backend", "heuristic", "--rejected", "mismatched")
    return out


def dpo(work: Path, prefs: Path, name: str, *extra: str | Path) -> Path:
    out = work / name
    run(ACCELERATE, "launch", "--cpu", "recipes/dpo.py",
        "--config", "recipes/smollm2-135m/dpo/config_lora.yaml", "--dataset_name", prefs,
        "--output_dir", out, "--max_steps", "1", "--per_device_train_batch_size", "1",
        "--gradient_accumulation_steps", "1", "--logging_steps", "1", *extra)
    return out


def test_generate_cot_writes_only_accepted_traces_of_training_users(cot):
    manifest = json.loads((cot / "manifest.json").read_text())
    summary = manifest["summary"]
    examples = validate_messages(read_jsonl(cot / "train.jsonl"))
    assert len(examples) == summary["accepted"] == manifest["examples"] > 0
    assert sum(summary["replies"].values()) == summary["cases"]  # one reply per case, counted
    assert summary["accepted_by_mode"] == {"sample": summary["accepted"]}
    assert {e["user_id"] for e in examples} <= set(manifest["train_users"])
    assert not set(manifest["train_users"]) & set(manifest["heldout_users"])
    for example in examples:
        assert example["messages"][1]["content"].endswith(f"Answer: {example['answer']}")


def test_sft_recipe_saves_a_projection_only_adapter(sft):
    config = json.loads((sft / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == set(PROJECTION_MODULES)  # what vLLM can load
    assert not config.get("modules_to_save")
    assert (sft / "adapter_model.safetensors").stat().st_size > 0


def test_dpo_recipe_reference_is_the_adapter_disabled_base(work, prefs):
    rows = validate_preferences(read_jsonl(prefs / "train.jsonl"))
    assert all(r["chosen_consistency"] > r["rejected_consistency"] for r in rows)
    out = dpo(work, prefs, "dpo")
    # eq. 27 at the first step: a fresh adapter is the identity, so pi_theta = pi_ref
    assert first_loss(out) == pytest.approx(math.log(2), abs=1e-6)
    assert (out / "adapter_config.json").is_file()


def test_dpo_from_the_sft_adapter_uses_it_as_reference(work, prefs, sft):
    from uscope.models import load_instruct_lm
    from uscope.tuning.objective import check_preferences

    out = dpo(work, prefs, "sft-dpo", "--sft_adapter", sft)
    assert first_loss(out) == pytest.approx(math.log(2), abs=1e-6)  # reference = SFT copy
    # against the base model instead, the SFT policy's margins are not zero
    model, tokenizer = load_instruct_lm(adapter=sft)
    check = check_preferences(model, tokenizer, read_jsonl(prefs / "train.jsonl")[:2], beta=0.1)
    assert check.mean_margin != pytest.approx(0.0, abs=1e-3)


def test_trained_adapters_reload_and_generate(work, sft, simulated):
    import torch

    from uscope.models import load_instruct_lm
    from uscope.profile import GenerationConfig, profile_users
    from uscope.profile.backends.hf import TransformersBackend
    from uscope.recommend import Recommender
    from uscope.recommend.llm import LLMStrategy

    adapter = work / "sft-dpo"
    model, tokenizer = load_instruct_lm(adapter=adapter)
    assert type(model).__name__ == "PeftModelForCausalLM" and not model.training
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Which app next?"}],
                                           tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    assert tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    events = simulated.events[simulated.events["user_id"].isin(["0", "1", "2"])]
    writer = TransformersBackend(adapter=adapter, generation=GenerationConfig(max_new_tokens=24, complete_sentences=False))
    assert writer.model.endswith(f"+{adapter}")
    profiles = profile_users(events, backend=writer)
    assert profiles.ok.frame["profile"].str.len().min() > 0
    rec = Recommender(profiles, events, LLMStrategy(adapter=sft, max_candidates=5))
    items = rec.recommend("0", kind="intent", k=3)
    used = set(events.loc[events["user_id"] == "0", "app_category"])
    assert len(items) == 3 and not {i.item for i in items} & used


def test_recipes_refuse_a_dataset_with_the_wrong_columns(work):
    from uscope.tuning.formats import MESSAGES_FORMAT, PREFERENCE_FORMAT, write_jsonl

    wrong = work / "wrong"
    write_jsonl(wrong / "train.jsonl", [{"text": "a plain language-modelling row"}])
    for recipe, expected in (("sft", MESSAGES_FORMAT), ("dpo", PREFERENCE_FORMAT)):
        done = subprocess.run(
            [sys.executable, f"recipes/{recipe}.py", "--config",
             f"recipes/smollm2-135m/{recipe}/config_lora.yaml", "--dataset_name", str(wrong),
             "--output_dir", str(work / f"never-{recipe}")],
            check=False, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
        assert done.returncode != 0
        assert expected in done.stderr and "got columns ['text']" in done.stderr
        assert not (work / f"never-{recipe}" / "adapter_config.json").exists()
