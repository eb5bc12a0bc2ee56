"""DPO on profile preference triplets (x, y_w, y_l), LoRA (seed paper 000, Sec. 5.3, eq. 27).

    accelerate launch --cpu recipes/dpo.py --config recipes/smollm2-135m/dpo/config_lora.yaml
    accelerate launch --cpu recipes/dpo.py --config recipes/smollm2-135m/dpo/config_lora.yaml \
        --sft_adapter runs/smollm2-135m-sft          # SFT, then DPO from its adapter
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero2.yaml \
        recipes/dpo.py --config recipes/llama-3.1-8b/dpo/config_lora.yaml

Follows TRL's own ``trl/scripts/dpo.py``: ``TrlParser((ScriptArguments, DPOConfig,
ModelConfig))``, ``--config`` YAML, command-line overrides. ``beta`` and ``loss_type``
(``sigmoid`` is eq. 27) come from the config. The reference pi_ref: with a fresh LoRA adapter
(``get_peft_config``) it is the base model with the adapter disabled; with ``--sft_adapter`` the
SFT adapter is trained further and TRL keeps a frozen copy of it (adapter "ref") as pi_ref, so
DPO stays close to the SFT model rather than to the base. The dataset is the preference jsonl
built by ``recipes/build_preferences.py``.
"""

from __future__ import annotations


def main(script_args, training_args, model_args) -> None:
    from trl import DPOTrainer

    from uscope.tuning.training import (
        check_lora_targets,
        dpo_dataset,
        dpo_policy,
        model_init_kwargs,
        resolve_model,
        resume_from,
    )

    resolve_model(model_args)
    check_lora_targets(model_args)
    training_args.model_init_kwargs = model_init_kwargs(model_args, training_args)
    model, peft_config = dpo_policy(script_args, model_args, training_args)
    if not isinstance(model, str):
        training_args.model_init_kwargs = None  # already loaded, with the SFT adapter
    trainer = DPOTrainer(
        model=model,
        args=training_args,
        train_dataset=dpo_dataset(script_args),
        peft_config=peft_config,
    )
    reference = ("frozen copy of the SFT adapter" if script_args.sft_adapter
                 else "base model, adapter disabled")
    trainer.accelerator.print(f"DPO: beta {training_args.beta}, loss {training_args.loss_type}, "
                              f"reference = {reference}")
    trainer.train(resume_from_checkpoint=resume_from(training_args))
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"adapter saved to {training_args.output_dir}")
    if hasattr(trainer, "end"):
        trainer.end()


if __name__ == "__main__":
    from trl import DPOConfig, ModelConfig, TrlParser

    from uscope.tuning.training import TuningScriptArguments

    parser = TrlParser((TuningScriptArguments, DPOConfig, ModelConfig))
    main(*parser.parse_args_and_config())
