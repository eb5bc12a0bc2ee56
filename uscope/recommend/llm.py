"""The ``llm`` strategy: a causal LM (the bundled SmolLM2, any model by path, or the LoRA
adapter trained by ``recipes/``) picks items from the catalogue (seed paper 000, RQ5, Fig. 7).

The answer is constrained to the catalogue in two ways that agree with each other:
- ranking: every candidate is scored by the model's mean log-probability of
  "Answer: <item>" after the prompt (teacher-forced, so no answer outside the catalogue
  exists);
- explanation (``explain=True``): the model writes a one-line reason, then ``outlines``
  generates the answer under a regular expression that admits only the candidate names.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from uscope.data.items import used_items
from uscope.recommend.strategies import CatalogueIndex, Query, Scored
from uscope.tuning.llm_task import NOUNS, candidate_shortlist, recommendation_prompt

__all__ = ["NOUNS", "LLMStrategy", "full_sequence_logprobs"]


def full_sequence_logprobs(model: Any, tokenizer: Any, prompt: str,
                           answers: list[str]) -> np.ndarray:
    """Reference for ``LLMStrategy.answer_logprobs``: one uncached forward pass over prompt +
    "Answer: <item>" per answer, mean log-probability of the answer tokens. Slow (the prompt is
    re-read for every answer); kept to verify and time the cached path."""
    import torch

    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    scores = []
    for answer in answers:
        cont = tokenizer(f"Answer: {answer}", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt_ids + cont])).logits[0]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        rows = torch.arange(len(prompt_ids) - 1, len(prompt_ids) - 1 + len(cont))
        scores.append(float(logprobs[rows, torch.tensor(cont)].mean()))
    return np.asarray(scores)


class LLMStrategy:
    name = "llm"

    def __init__(self, model: str | os.PathLike | None = None,
                 adapter: str | os.PathLike | None = None, max_candidates: int = 60,
                 batch_size: int = 16, reasoning_tokens: int = 40):
        self.model_name, self.adapter = model, adapter
        self.max_candidates, self.batch_size = max_candidates, batch_size
        self.reasoning_tokens = reasoning_tokens
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> tuple[Any, Any]:
        if self._model is None:
            from uscope.models import load_instruct_lm

            self._model, self._tokenizer = load_instruct_lm(self.model_name, adapter=self.adapter)
        return self._model, self._tokenizer

    def prompt_text(self, query: Query, kind: str, candidates: list[str], profile: str,
                    column: str | None = None) -> str:
        """The user message (``prompts/recommend_v1.j2``; also the prompt of the CoT training
        examples, ``uscope.tuning.llm_task``). `column`: where `kind`'s items are, as decided
        on the population (``CatalogueIndex.column``); None decides it on the history."""
        used = used_items(query.history, kind, column)
        return recommendation_prompt(profile, used, kind, candidates, column)

    def prompt(self, query: Query, kind: str, candidates: list[str], profile: str,
               column: str | None = None) -> str:
        text = self.prompt_text(query, kind, candidates, profile, column)
        _, tokenizer = self.load()
        messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=True)

    def answer_logprobs(self, prompt: str, answers: list[str]) -> np.ndarray:
        """Mean log-probability of each "Answer: <item>" continuation of `prompt`.

        The prompt is encoded once; its key/value cache is copied into every batch of
        continuations, so each candidate costs only its own few tokens.
        """
        import copy

        import torch

        model, tokenizer = self.load()
        prompt_ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            head = model(input_ids=prompt_ids, use_cache=True)
        first = torch.log_softmax(head.logits[0, -1].float(), dim=-1)  # the first answer token
        scores = []
        for start in range(0, len(answers), self.batch_size):
            chunk = answers[start:start + self.batch_size]
            continuations = [tokenizer(f"Answer: {a}", add_special_tokens=False)["input_ids"]
                             for a in chunk]
            width = max(len(c) for c in continuations)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros(len(chunk), prompt_ids.shape[1] + width, dtype=torch.long)
            mask[:, : prompt_ids.shape[1]] = 1
            for row, cont in enumerate(continuations):  # right padding after each answer
                ids[row, : len(cont)] = torch.tensor(cont)
                mask[row, prompt_ids.shape[1]: prompt_ids.shape[1] + len(cont)] = 1
            cache = copy.deepcopy(head.past_key_values)
            cache.batch_repeat_interleave(len(chunk))
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask, past_key_values=cache,
                               use_cache=True).logits  # (B, width, V): predicts token t+1
            logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            for row, cont in enumerate(continuations):
                rest = logprobs[row, torch.arange(len(cont) - 1), torch.tensor(cont[1:])]
                scores.append(float(torch.cat([first[cont[0]].reshape(1), rest]).mean()))
        return np.asarray(scores)

    def explain(self, prompt: str, candidates: list[str]) -> str:
        """A short generated reason, then an answer that ``outlines`` restricts to `candidates`."""
        import outlines
        import torch

        model, tokenizer = self.load()
        lead = prompt + "Reason:"
        inputs = tokenizer(lead, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=self.reasoning_tokens,
                                    do_sample=False, pad_token_id=tokenizer.pad_token_id)
        reason = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:],
                                  skip_special_tokens=True).strip().split("\n")[0]
        choice = "|".join(re.escape(c) for c in candidates)
        generator = outlines.Generator(outlines.from_transformers(model, tokenizer),
                                       outlines.types.Regex(f"({choice})"))
        answer = generator(f"{lead} {reason}\nAnswer: ", max_new_tokens=32).strip()
        return f"Reason: {reason} Answer: {answer}"

    def shortlist(self, index: CatalogueIndex, query: Query, kind: str) -> list[int]:
        """Catalogue indices of the candidates: the most popular items the user has not used
        (``uscope.tuning.llm_task.candidate_shortlist``, as in training)."""
        return candidate_shortlist(index.matrix(kind), index.used(query, kind),
                                   self.max_candidates)

    def score(self, index: CatalogueIndex, query: Query, kind: str) -> Scored:
        catalogue = index.matrix(kind).items
        shortlist = self.shortlist(index, query, kind)
        candidates = [catalogue[i] for i in shortlist]
        scores = np.full(len(catalogue), -np.inf)
        if not candidates:
            return Scored(scores)
        prompt = self.prompt(query, kind, candidates, query.profile, index.column(kind))
        scores[shortlist] = self.answer_logprobs(prompt, candidates)
        evidence = {i: f"model log-probability {scores[i]:.2f} as the answer"
                    for i in shortlist}
        return Scored(scores, evidence, explain=lambda: self.explain(prompt, candidates))
