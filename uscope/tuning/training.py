"""What ``recipes/sft.py`` and ``recipes/dpo.py`` share: arguments, models, datasets, resume.

- ``TuningScriptArguments``: TRL's ``ScriptArguments`` (``dataset_name`` is a local dataset:
  a ``.jsonl`` file or a folder holding ``train.jsonl``) plus ``sft_adapter`` for DPO.
- ``model_name_or_path: bundled:smollm2-135m`` in a YAML names the bundled SmolLM2 HF folder.
- SFT loss on assistant turns only: TRL's ``assistant_only_loss`` needs a chat template with
  ``{% generation %}`` markers, and TRL 1.16 patches in such a template only for models it
  knows (neither SmolLM2's ChatML nor Llama 3.1's template). So by default each conversation is
  split at its final assistant turn into conversational ``prompt``/``completion`` and
  ``completion_only_loss`` masks everything before it; with ``assistant_only_loss: true`` (a
  template with markers) the ``messages`` column is kept and TRL masks by template instead.
- DPO reference: a fresh LoRA adapter (``peft_config``) uses the adapter-disabled base as
  pi_ref; ``sft_adapter`` loads that adapter trainable, and TRL copies it as a frozen "ref"
  adapter, so pi_ref is the SFT model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, ScriptArguments, get_peft_config

from uscope.models import resolve_model_source
from uscope.tuning.formats import load_preference_dataset, load_sft_dataset

# Linear projections of a Llama block: the modules vLLM's LoRA support loads.
PROJECTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TuningScriptArguments(ScriptArguments):
    sft_adapter: str | None = field(default=None, metadata={
        "help": "dpo.py: continue from this SFT adapter folder; the DPO reference is then a "
                "frozen copy of it instead of the adapter-disabled base model."})


def resolve_model(model_args: ModelConfig) -> str:
    """Replace ``bundled:smollm2-135m`` (or nothing) by the bundled model's folder, in place."""
    model_args.model_name_or_path = str(resolve_model_source(model_args.model_name_or_path))
    return model_args.model_name_or_path


def model_init_kwargs(model_args: ModelConfig, training_args: Any) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments from the model config (as TRL's scripts build)."""
    kwargs = {"revision": model_args.model_revision, "dtype": model_args.dtype,
              "attn_implementation": model_args.attn_implementation,
              "trust_remote_code": training_args.trust_remote_code}
    kwargs.update(training_args.model_init_kwargs or {})
    return kwargs


def check_lora_targets(model_args: ModelConfig) -> None:
    """LoRA on anything but the projection layers would not load in vLLM: refuse it."""
    targets = model_args.lora_target_modules
    if not model_args.use_peft or targets in (None, "all-linear"):
        return
    targets = [targets] if isinstance(targets, str) else list(targets)
    other = sorted(set(targets) - set(PROJECTION_MODULES))
    if other or model_args.lora_modules_to_save:
        raise ValueError(f"lora_target_modules {other or targets} / lora_modules_to_save "
                         f"{model_args.lora_modules_to_save}: target only {PROJECTION_MODULES} "
                         f"so that vLLM (LoRARequest) can load the adapter")


def sft_dataset(script_args: TuningScriptArguments, training_args: Any):
    """The training split for ``SFTTrainer`` with the loss on assistant turns only."""
    if not script_args.dataset_name:
        raise ValueError("dataset_name: give the messages dataset built by recipes/generate_cot.py")
    if training_args.assistant_only_loss:
        return load_sft_dataset(script_args.dataset_name, keep_messages=True)
    if training_args.completion_only_loss is False:
        raise ValueError("completion_only_loss is false and assistant_only_loss is false: the "
                         "loss would cover the prompt; set completion_only_loss: true")
    training_args.completion_only_loss = True
    return load_sft_dataset(script_args.dataset_name)


def dpo_dataset(script_args: TuningScriptArguments):
    if not script_args.dataset_name:
        raise ValueError("dataset_name: give the preference dataset built by "
                         "recipes/build_preferences.py")
    return load_preference_dataset(script_args.dataset_name)


def dpo_policy(script_args: TuningScriptArguments, model_args: ModelConfig,
               training_args: Any) -> tuple[Any, Any]:
    """(model, peft_config) for ``DPOTrainer`` and the reference it implies (module docstring)."""
    if script_args.sft_adapter is None:
        return model_args.model_name_or_path, get_peft_config(model_args)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = Path(script_args.sft_adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"sft_adapter {adapter} is not a PEFT adapter folder "
                                f"(no adapter_config.json); train one with recipes/sft.py")
    kwargs = {k: v for k, v in model_init_kwargs(model_args, training_args).items()
              if v is not None}
    base = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **kwargs)
    return PeftModel.from_pretrained(base, os.fspath(adapter), is_trainable=True), None


def resume_from(training_args: Any) -> str | bool | None:
    """``resume_from_checkpoint``; "last" means the newest checkpoint in ``output_dir`` (or a
    fresh start when there is none), so a killed run continues when launched again."""
    value = training_args.resume_from_checkpoint
    if value != "last":
        return value
    from transformers.trainer_utils import get_last_checkpoint

    output = Path(training_args.output_dir)
    return get_last_checkpoint(os.fspath(output)) if output.is_dir() else None
