"""Supervised fine-tuning on chain-of-thought traces, LoRA (seed paper 000, Sec. 7.5).

    accelerate launch --cpu recipes/sft.py --config recipes/smollm2-135m/sft/config_lora.yaml
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/sft.py \
        --config recipes/llama-3.1-8b/sft/config_lora.yaml

Follows TRL's own ``trl/scripts/sft.py``: ``TrlParser((ScriptArguments, SFTConfig,
ModelConfig))`` reads the YAML given by ``--config``, and any field can be overridden on the
command line (``--max_steps 2 --output_dir tmp``). The dataset is the ``messages`` jsonl built
by ``recipes/generate_cot.py``; the loss covers the assistant turn only (see
``uscope.tuning.training``). LoRA comes from the config through ``get_peft_config``; the
adapter is saved to ``output_dir``. ``--resume_from_checkpoint last`` continues a killed run.
"""

from __future__ import annotations


def main(script_args, training_args, model_args) -> None:
    from trl import SFTTrainer, get_peft_config

    from uscope.tuning.training import (
        check_lora_targets,
        model_init_kwargs,
        resolve_model,
        resume_from,
        sft_dataset,
    )

    resolve_model(model_args)
    check_lora_targets(model_args)
    training_args.model_init_kwargs = model_init_kwargs(model_args, training_args)
    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=sft_dataset(script_args, training_args),
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=resume_from(training_args))
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"adapter saved to {training_args.output_dir}")
    if hasattr(trainer, "end"):
        trainer.end()  # closes trackers and the process group


if __name__ == "__main__":
    from trl import ModelConfig, SFTConfig, TrlParser

    from uscope.tuning.training import TuningScriptArguments

    parser = TrlParser((TuningScriptArguments, SFTConfig, ModelConfig))
    main(*parser.parse_args_and_config())
