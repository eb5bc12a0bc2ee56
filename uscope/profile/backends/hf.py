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
from uscope.profile.backends.base import (
    Generation,
    GenerationConfig,
    ProfileRequest,
    finished_text,
)
from uscope.profile.grounded import GroundedOrFree, GroundedStats


def chat_texts(tokenizer: Any, requests: Sequence[ProfileRequest]) -> list[str]:
    """Each request's messages through the tokenizer's chat template, ready for generation."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; the transformers backend needs an "
                         "instruct/chat model")
    return [tokenizer.apply_chat_template(r.prompt.messages, tokenize=False,
                                          add_generation_prompt=True) for r in requests]


class TransformersBackend(GroundedOrFree):
    """Batched greedy (or sampled) generation with a local causal LM."""

    name = "transformers"

    def __init__(self, model: str | os.PathLike | None = None,
                 generation: GenerationConfig | None = None, *, loaded: tuple[Any, Any] | None = None,
                 label: str | None = None, adapter: str | os.PathLike | None = None,
                 names: set[str] | None = None):
        """``loaded`` = an already loaded (model, tokenizer) pair, e.g. shared between jobs;
        ``adapter`` = a PEFT (LoRA) adapter folder, e.g. trained by ``recipes/dpo.py``;
        ``names`` = the population's category and place names, which the free text of a
        grounded profile is checked against (besides those of the batch's users)."""
        if loaded is not None and adapter is not None:
            raise ValueError("pass adapter= with a model to load, not with an already loaded one")
        self.generation = generation or GenerationConfig()
        self.lm, self.tokenizer = loaded if loaded is not None else load_instruct_lm(
            model, adapter=adapter)
        pad_left(self.tokenizer)  # also for a pair loaded elsewhere
        self.names = set(names or ())
        self.grounded_stats = GroundedStats()
        self.model = label or model_label(model, SMOLLM2_NAME) + (
            f"+{adapter}" if adapter is not None else "")

    def decode_constrained(self, conversations: Sequence[list[dict]], regexes: Sequence[str],
                           max_new_tokens: int, temperature: float) -> list[tuple[str, bool]]:
        """Each conversation continued under its regex (``uscope.profile.constrained``)."""
        from uscope.profile.constrained import generate_constrained

        prompts = [self.tokenizer.apply_chat_template(m, tokenize=False,
                                                      add_generation_prompt=True)
                   for m in conversations]
        out = generate_constrained(self.lm, self.tokenizer, prompts, regexes,
                                   max_new_tokens=max_new_tokens, temperature=temperature,
                                   seed=self.generation.seed,
                                   repetition_penalty=self.generation.repetition_penalty)
        return [(o.text, o.complete) for o in out]

    def _generate(self, prompts: Sequence[str], max_new_tokens: int,
                  temperature: float) -> list[str]:
        """Plain batched generation from chat-templated prompts; the new text of each."""
        import torch

        gen = self.generation
        encoded = self.tokenizer(list(prompts), return_tensors="pt", padding=True,
                                 add_special_tokens=False)
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            torch.manual_seed(gen.seed)  # generate() draws from the global generator
            sampling = {"do_sample": True, "temperature": temperature, "top_p": gen.top_p}
        with torch.inference_mode():
            out = self.lm.generate(
                **encoded, max_new_tokens=max_new_tokens,
                repetition_penalty=gen.repetition_penalty,
                pad_token_id=self.tokenizer.pad_token_id, **sampling,
            )  # (B, L_prompt + L_new)
        new = out[:, encoded["input_ids"].shape[1]:]  # (B, L_new)
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

    def generate_free(self, requests: Sequence[ProfileRequest]) -> list[Generation]:
        gen = self.generation
        texts = self._generate(chat_texts(self.tokenizer, requests), gen.max_new_tokens,
                               gen.temperature)
        return [finished_text(t, gen) for t in texts]
