"""pi_theta (eq. 23) as any ``transformers`` causal LM with its chat template, batched.

Default: the bundled SmolLM2-135M-Instruct (``uscope.models.load_instruct_lm``), offline. Any
other model by path or hub id, optionally with a PEFT adapter on top. Prompts are left-padded
so one ``generate`` call serves a batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from uscope.models import SMOLLM2_NAME, load_instruct_lm, model_label, pad_left
from uscope.profile.backends.base import Generation, GenerationConfig, ProfileRequest


def chat_texts(tokenizer: Any, requests: Sequence[ProfileRequest]) -> list[str]:
    """Each request's messages through the tokenizer's chat template, ready for generation."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; the transformers backend needs an "
                         "instruct/chat model")
    return [tokenizer.apply_chat_template(r.prompt.messages, tokenize=False,
                                          add_generation_prompt=True) for r in requests]


class TransformersBackend:
    """Batched greedy (or sampled) generation with a local causal LM."""

    name = "transformers"

    def __init__(self, model: str | os.PathLike | None = None,
                 generation: GenerationConfig | None = None, *, loaded: tuple[Any, Any] | None = None,
                 label: str | None = None, adapter: str | os.PathLike | None = None):
        """``loaded`` = an already loaded (model, tokenizer) pair, e.g. shared between jobs;
        ``adapter`` = a PEFT (LoRA) adapter folder, e.g. trained by ``recipes/dpo.py``."""
        if loaded is not None and adapter is not None:
            raise ValueError("pass adapter= with a model to load, not with an already loaded one")
        self.generation = generation or GenerationConfig()
        self.lm, self.tokenizer = loaded if loaded is not None else load_instruct_lm(
            model, adapter=adapter)
        pad_left(self.tokenizer)  # also for a pair loaded elsewhere
        self.model = label or model_label(model, SMOLLM2_NAME) + (
            f"+{adapter}" if adapter is not None else "")

    def generate(self, requests: Sequence[ProfileRequest]) -> list[Generation]:
        import torch

        if not requests:
            return []
        gen = self.generation
        encoded = self.tokenizer(chat_texts(self.tokenizer, requests), return_tensors="pt",
                                 padding=True, add_special_tokens=False)
        sampling: dict[str, Any] = {"do_sample": False}
        if gen.temperature > 0:
            torch.manual_seed(gen.seed)  # generate() draws from the global generator
            sampling = {"do_sample": True, "temperature": gen.temperature, "top_p": gen.top_p}
        with torch.inference_mode():
            out = self.lm.generate(
                **encoded, max_new_tokens=gen.max_new_tokens,
                repetition_penalty=gen.repetition_penalty,
                pad_token_id=self.tokenizer.pad_token_id, **sampling,
            )  # (B, L_prompt + L_new)
        new = out[:, encoded["input_ids"].shape[1]:]  # (B, L_new)
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [Generation(t.strip()) for t in texts]
