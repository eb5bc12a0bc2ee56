"""Fine-tune the sequence LM of eq. 25 (seed paper 000, Sec. 5.2): TRL SFT with LoRA on real
app-location sequences conditioned on the profile text.

    python recipes/synth_lm.py --config recipes/smollm2-135m/synth/config_lora.yaml
    accelerate launch recipes/synth_lm.py --config recipes/llama-3.1-8b/synth/config_lora.yaml

The examples (profile header -> lines of consecutive real events) come from
``uscope.synth.sft_dataset``, in the text the constrained decoder completes at generation time.
``model_name_or_path: bundled:smollm2-135m`` names the bundled SmolLM2-135M-Instruct. A run
killed mid-way continues from the last checkpoint in ``output_dir`` when started again.
The saved adapter is what ``uscope synthesize --adapter`` loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser


@dataclass
class SynthScriptArguments(ScriptArguments):
    """Where the real sequences and their profiles come from."""

    events: str | None = field(default=None, metadata={
        "help": "Real events: an event table (parquet) or a Tsinghua-format folder."})
    profiles: str | None = field(default=None, metadata={
        "help": "ProfileSet parquet; without it profiles are written with profile_backend."})
    profile_backend: str = field(default="heuristic", metadata={
        "help": "Profile writer when no profile file is given."})
    simulate_users: int = field(default=0, metadata={
        "help": "Without --events: train on a SIMULATED population of this many users."})
    simulate_days: int = field(default=7, metadata={"help": "Days of the simulated population."})
    events_per_example: int = field(default=24, metadata={"help": "Event lines per example."})
    max_examples_per_user: int | None = field(default=8, metadata={
        "help": "Chunks drawn per user (None: all)."})
    chunk_seed: int = field(default=0, metadata={"help": "Seed of the chunk draw."})


def build_dataset(args: SynthScriptArguments):
    from uscope.synth.training import SFTDataConfig, load_training_inputs, sft_dataset

    events = args.events
    if events is None:
        if args.simulate_users < 1:
            raise ValueError("give --events, or --simulate_users N for a SIMULATED population")
        import tempfile

        from uscope.data import simulate

        events = str(simulate(n_users=args.simulate_users, days=args.simulate_days,
                              seed=args.chunk_seed, out_dir=tempfile.mkdtemp()).directory)
    table, profiles = load_training_inputs(events, args.profiles, args.profile_backend)
    config = SFTDataConfig(args.events_per_example, args.max_examples_per_user, args.chunk_seed)
    return sft_dataset(table, profiles, config, source=str(events))


def main(script_args: SynthScriptArguments, training_args: SFTConfig,
         model_args: ModelConfig) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer, get_peft_config

    from uscope.models import resolve_model_source

    model_path = str(resolve_model_source(model_args.model_name_or_path))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=model_args.dtype or "auto",
        attn_implementation=model_args.attn_implementation)
    dataset = build_dataset(script_args)
    trainer = SFTTrainer(model=model, args=training_args, train_dataset=dataset,
                         processing_class=tokenizer, peft_config=get_peft_config(model_args))
    resume = training_args.resume_from_checkpoint
    if resume is None and os.path.isdir(training_args.output_dir):
        resume = get_last_checkpoint(training_args.output_dir)  # None when there is none
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"{len(dataset)} examples; adapter saved to "
                              f"{training_args.output_dir}")


if __name__ == "__main__":
    parser = TrlParser((SynthScriptArguments, SFTConfig, ModelConfig))
    main(*parser.parse_args_and_config())
