"""What the SFT and DPO recipes share: their YAML configs parse with TRL's own parser and say
what the issue asks (Llama: bf16, non-reentrant checkpointing, projection-only LoRA; SmolLM2:
the bundled model on a CPU), the accelerate configs load, LoRA targets vLLM cannot load are
refused, and SFT puts its loss on the assistant turn only (real SFTTrainer, real SmolLM2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from trl import DPOConfig, ModelConfig, SFTConfig, TrlParser

from uscope.models import BUNDLED_SMOLLM2, resolve_model_source, smollm2_hf_dir
from uscope.tuning.formats import write_jsonl
from uscope.tuning.training import (
    PROJECTION_MODULES,
    TuningScriptArguments,
    check_lora_targets,
    resume_from,
    sft_dataset,
)

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
CONFIGS = {"SFT": SFTConfig, "DPO": DPOConfig}


def parse(stage: str, model: str, *overrides: str):
    parser = TrlParser((TuningScriptArguments, CONFIGS[stage], ModelConfig))
    path = RECIPES / model / stage.lower() / "config_lora.yaml"
    return parser.parse_args_and_config(["--config", str(path), *overrides])


@pytest.mark.parametrize("stage", ["SFT", "DPO"])
def test_llama_configs_are_gpu_lora_on_projections(stage):
    raw = yaml.safe_load((RECIPES / "llama-3.1-8b" / stage.lower() / "config_lora.yaml")
                         .read_text())
    assert raw["bf16"] is True and "use_cpu" not in raw
    # bf16 needs a GPU to build the config: parse it here as the CPU fallback would run it
    script, training, model = parse(stage, "llama-3.1-8b", "--use_cpu", "true")
    assert model.model_name_or_path == "meta-llama/Llama-3.1-8B-Instruct"
    assert model.dtype == "bfloat16" and training.bf16 is True
    assert training.gradient_checkpointing is True
    assert training.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert model.use_peft and tuple(model.lora_target_modules) == PROJECTION_MODULES
    assert not model.lora_modules_to_save  # vLLM's LoRARequest loads projection adapters only
    check_lora_targets(model)
    if stage == "DPO":
        assert training.beta == 0.1 and training.loss_type == ["sigmoid"]  # eq. 27
        assert script.sft_adapter == "runs/llama-3.1-8b-sft"  # DPO continues from SFT
    else:
        assert training.completion_only_loss is True and not training.assistant_only_loss


@pytest.mark.parametrize("stage", ["SFT", "DPO"])
def test_smollm2_configs_run_on_a_cpu_and_take_overrides(stage, tmp_path):
    script, training, model = parse(stage, "smollm2-135m", "--max_steps", "2",
                                    "--output_dir", str(tmp_path))
    assert model.model_name_or_path == BUNDLED_SMOLLM2
    assert training.use_cpu and not training.bf16 and not training.gradient_checkpointing
    assert training.max_steps == 2 and training.output_dir == str(tmp_path)
    assert tuple(model.lora_target_modules) == PROJECTION_MODULES
    assert script.sft_adapter is None


def test_bundled_model_name_resolves_and_unknown_ones_fail():
    assert Path(resolve_model_source(BUNDLED_SMOLLM2)) == smollm2_hf_dir()
    assert resolve_model_source("meta-llama/Llama-3.1-8B-Instruct") == \
        "meta-llama/Llama-3.1-8B-Instruct"
    with pytest.raises(ValueError, match="unknown bundled model"):
        resolve_model_source("bundled:gpt-5")


def test_lora_targets_vllm_cannot_load_are_refused():
    model = ModelConfig(use_peft=True, lora_target_modules=["q_proj", "embed_tokens"])
    with pytest.raises(ValueError, match="embed_tokens"):
        check_lora_targets(model)
    with pytest.raises(ValueError, match="modules_to_save"):
        check_lora_targets(ModelConfig(use_peft=True, lora_target_modules=["q_proj"],
                                       lora_modules_to_save=["lm_head"]))


@pytest.mark.parametrize("name, kind", [("single_gpu", "NO"), ("multi_gpu", "MULTI_GPU"),
                                        ("fsdp", "FSDP"), ("deepspeed_zero2", "DEEPSPEED"),
                                        ("cpu", "NO")])
def test_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(RECIPES / "accelerate_configs" / f"{name}.yaml"))
    assert config.distributed_type == kind
    assert config.use_cpu == (name == "cpu")
    if name == "deepspeed_zero2":
        assert config.deepspeed_config["zero_stage"] == 2
    if name == "fsdp":
        assert config.fsdp_config["fsdp_version"] == 2


def test_resume_last_finds_the_newest_checkpoint(tmp_path):
    _, training, _ = parse("SFT", "smollm2-135m", "--output_dir", str(tmp_path),
                           "--resume_from_checkpoint", "last")
    assert resume_from(training) is None  # nothing yet: a fresh start
    for step in (5, 50, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert resume_from(training) == str(tmp_path / "checkpoint-50")


@pytest.mark.slow
@pytest.mark.usefixtures("torch_one_thread")
def test_sft_loss_covers_the_assistant_turn_only(tmp_path, smollm2):
    from trl import SFTTrainer, get_peft_config

    _, tokenizer = smollm2
    answers = ["Reason: they game at night.\nAnswer: Games",
               "Reason: long commutes.\nAnswer: Music"]
    rows = [{"messages": [{"role": "user", "content": f"Question {i}: which app next?"},
                          {"role": "assistant", "content": a}]} for i, a in enumerate(answers)]
    write_jsonl(tmp_path / "cot" / "train.jsonl", rows)
    script, training, model = parse("SFT", "smollm2-135m", "--dataset_name",
                                    str(tmp_path / "cot"), "--output_dir", str(tmp_path / "out"))
    trainer = SFTTrainer(model=str(smollm2_hf_dir()), args=training,
                         train_dataset=sft_dataset(script, training),
                         peft_config=get_peft_config(model))
    for row, answer in zip(trainer.train_dataset, answers):
        ids, labels = row["input_ids"], row["labels"]
        trained = [t for t, label in zip(ids, labels) if label != -100]
        assert all(label in (-100, t) for t, label in zip(ids, labels))
        assert tokenizer.decode(trained).startswith(answer + "<|im_end|>")
        first = next(i for i, label in enumerate(labels) if label != -100)
        assert "Question" in tokenizer.decode(ids[:first])  # the prompt is context only
        assert all(label != -100 for label in labels[first:])


def test_adapter_options_fail_clearly(tmp_path):
    from typer.testing import CliRunner

    from uscope.cli import app
    from uscope.models import load_instruct_lm
    from uscope.profile.backends.hf import TransformersBackend

    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_instruct_lm(adapter=tmp_path)  # a folder that holds no adapter
    with pytest.raises(ValueError, match="already loaded"):
        TransformersBackend(loaded=(object(), object()), adapter=tmp_path)
    result = CliRunner().invoke(app, ["profile", str(tmp_path / "events.parquet"), "--out",
                                      str(tmp_path / "p.parquet"), "--backend", "heuristic",
                                      "--adapter", str(tmp_path)])
    assert result.exit_code == 2 and "--adapter applies to the transformers and vllm" in \
        result.output
