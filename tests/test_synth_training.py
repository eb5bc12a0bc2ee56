"""Training data of the sequence LM (eq. 25) and the TRL recipe recipes/synth_lm.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from uscope.synth import SFTDataConfig, parse_sequence, sft_dataset, sft_examples
from uscope.synth.serialise import prompt_header, timed_pairs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def profiles(simulated):
    from uscope.profile import profile_users

    return profile_users(simulated.events, backend="heuristic")


def test_examples_are_profile_headers_and_consecutive_real_events(simulated, profiles):
    config = SFTDataConfig(events_per_example=5, max_examples_per_user=None)
    records = sft_examples(simulated.events, profiles, config, users=["0"])
    history = simulated.events[simulated.events["user_id"] == "0"]
    assert all(r["prompt"] == prompt_header(profiles.profile_of("0")) for r in records)
    lines = [line for r in records for line in parse_sequence(r["completion"])]
    assert lines == timed_pairs(history)  # every event once, in time order
    assert all(len(parse_sequence(r["completion"])) == 5 for r in records[:-1])


def test_examples_per_user_are_capped_and_seeded(simulated, profiles):
    config = SFTDataConfig(events_per_example=4, max_examples_per_user=3, seed=1)
    first = sft_examples(simulated.events, profiles, config)
    assert len(first) == 3 * len(profiles)
    assert first == sft_examples(simulated.events, profiles, config)
    dataset = sft_dataset(simulated.events, profiles, config)
    assert dataset.column_names == ["prompt", "completion"] and len(dataset) == len(first)


def test_synthetic_events_are_not_training_data(simulated, profiles):
    from uscope.synth import SyntheticInEvaluation

    fake = simulated.events.copy()
    fake["synthetic"] = True
    with pytest.raises(SyntheticInEvaluation, match="training data"):
        sft_examples(fake, profiles)


@pytest.mark.slow
def test_recipe_trains_an_adapter_that_constrained_decoding_loads(tmp_path, simulated,
                                                                  torch_one_thread):
    """Real TRL SFT + LoRA for one step on SmolLM2, then constrained generation with it."""
    from uscope.data import save_events
    from uscope.synth import OutlinesDecoder, SynthConfig, load_synth_lm, synthesize

    users = ["0", "1"]
    events = simulated.events[simulated.events["user_id"].isin(users)]
    events_path = save_events(events, tmp_path / "events.parquet")
    out = tmp_path / "adapter"
    command = [sys.executable, str(REPO / "recipes" / "synth_lm.py"), "--config",
               str(REPO / "recipes" / "smollm2-135m" / "synth" / "config_lora.yaml"),
               "--events", str(events_path), "--output_dir", str(out), "--max_steps", "1",
               "--per_device_train_batch_size", "1", "--events_per_example", "3",
               "--max_examples_per_user", "1", "--save_steps", "1", "--logging_steps", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "adapter_config.json").exists() and (out / "checkpoint-1").is_dir()
    model, tokenizer = load_synth_lm(adapter=out)
    from uscope.profile import profile_users

    result = synthesize(events, profile_users(events, backend="heuristic"),
                        OutlinesDecoder(model, tokenizer), SynthConfig(events_per_sequence=1),
                        users=["0"])
    assert len(result.events) == 1 and result.events["synthetic"].all()
