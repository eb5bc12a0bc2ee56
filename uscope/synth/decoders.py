"""Decoders that complete a batch of prompts with one (app, location) pair each.

- ``OutlinesDecoder``: constrained decoding with ``outlines`` on a ``transformers`` causal LM;
  the output can only be one of the offered pairs (``choice_regex``). Compiled generators are
  cached per option set (one user has at most two: allowed, allowed + candidates).
- ``FreeTextDecoder``: the same model, the same prompts and sampling, no constraint; the text is
  cut at the first newline and may be anything. It is the baseline of the throughput and
  validity comparison.
The vLLM decoder lives in ``uscope.synth.vllm_structured`` (same constraint, as structured
output parameters). Sampling uses torch's global generator: ``reseed`` makes a user's draws
reproducible. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from uscope.synth.constraint import choice_regex
from uscope.synth.pairs import Pair
from uscope.synth.serialise import completion_text


def load_synth_lm(model: str | os.PathLike | None = None,
                  adapter: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of the sequence LM: the bundled SmolLM2 (or ``model``), with the LoRA
    ``adapter`` written by ``recipes/synth_lm.py`` merged into its weights when given."""
    from uscope.models import load_instruct_lm

    lm, tokenizer = load_instruct_lm(model)
    if adapter is not None:
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, str(adapter)).merge_and_unload()
        lm.eval()
    return lm, tokenizer


class _SamplingDecoder:
    """Shared sampling settings of the two transformers decoders."""

    constrained: bool = False

    def __init__(self, model: Any, tokenizer: Any, temperature: float = 1.0,
                 top_p: float | None = None):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.model, self.tokenizer = model, tokenizer
        self.temperature, self.top_p = temperature, top_p

    def sampling_kwargs(self) -> dict[str, Any]:
        if self.temperature == 0:
            return {"do_sample": False}
        kwargs: dict[str, Any] = {"do_sample": True, "temperature": self.temperature}
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        return kwargs

    def reseed(self, seed: int) -> None:
        import torch

        torch.manual_seed(seed)

    def token_budget(self, options: Sequence[Pair]) -> int:
        """New-token limit that fits every option however the constraint splits it into tokens
        (each token carries at least one character)."""
        return max(len(completion_text(p)) for p in options) + 1


class OutlinesDecoder(_SamplingDecoder):
    """Constrained decoding: every output is exactly one ``completion_text`` of the options."""

    constrained = True

    def __init__(self, model: Any, tokenizer: Any, temperature: float = 1.0,
                 top_p: float | None = None, max_cached: int = 16):
        import outlines

        super().__init__(model, tokenizer, temperature, top_p)
        self._outlines_model = outlines.from_transformers(model, tokenizer)
        self._cache: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self.max_cached = max_cached
        self.compiled = 0  # how many generators were built (cache misses)

    def generator(self, options: Sequence[Pair]) -> Any:
        """The outlines generator for ``options``, built once per option set (LRU cache)."""
        import outlines

        key = tuple(sorted(completion_text(p) for p in options))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        generator = outlines.Generator(self._outlines_model,
                                       outlines.types.Regex(choice_regex(options)))
        self.compiled += 1
        self._cache[key] = generator
        if len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return generator

    def choose(self, prompts: Sequence[str], options: Sequence[Pair]) -> list[str]:
        generator = self.generator(options)
        kwargs = {"max_new_tokens": self.token_budget(options), **self.sampling_kwargs()}
        if len(prompts) == 1:
            return [generator(prompts[0], **kwargs)]
        return list(generator.batch(list(prompts), **kwargs))


class FreeTextDecoder(_SamplingDecoder):
    """Unconstrained sampling of the next line; only the text up to the first newline is kept."""

    def token_budget(self, options: Sequence[Pair]) -> int:
        """The longest option's own tokenisation plus a margin (free text stops at a newline)."""
        return max(len(self.tokenizer(completion_text(p), add_special_tokens=False)["input_ids"])
                   for p in options) + 4

    def choose(self, prompts: Sequence[str], options: Sequence[Pair]) -> list[str]:
        import torch

        inputs = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        with torch.no_grad():
            output = self.model.generate(
                **inputs, max_new_tokens=self.token_budget(options),
                pad_token_id=self.tokenizer.pad_token_id, stop_strings=["\n"],
                tokenizer=self.tokenizer, **self.sampling_kwargs())
        texts = self.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:],
                                            skip_special_tokens=True)
        return [t.split("\n", 1)[0] + "\n" if "\n" in t else t for t in texts]
