"""A local transformers teacher guided into the reply format (Sec. 7.5, offline).

A frontier teacher behind an OpenAI-compatible endpoint follows "Reasoning: ... / Answer: ..."
from the instruction alone. A small local model (the bundled SmolLM2-135M, measured) does not:
it writes a story, and after a prefilled "Answer:" it still does not copy a candidate. This
backend keeps the model's own words but writes the two labels itself: it prefills "Reasoning:"
and keeps the first line the model writes (cut to whole sentences), then appends "Answer:" and
draws the answer from the model's own distribution restricted to the candidates of a
``TeacherRequest`` (sequence log-probability of " <candidate>\n"; argmax when greedy). The
reply is then parsed and checked like any teacher's: an empty reasoning is unparseable, a
candidate the user did not adopt is rejected, and both are counted. Requests without
candidates get a free-form answer line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from uscope.models import SMOLLM2_NAME, load_instruct_lm, model_label, pad_left
from uscope.profile.backends.base import Generation, GenerationConfig, ProfileRequest
from uscope.profile.backends.hf import chat_texts

REASONING_LABEL = "Reasoning:"
ANSWER_LABEL = "Answer:"


@dataclass(frozen=True)
class TeacherRequest(ProfileRequest):
    """A ``ProfileRequest`` that also names the allowed answers (other backends ignore them)."""

    candidates: tuple[str, ...] = ()


def whole_sentences(line: str) -> str:
    """``line`` cut after its last full stop, when it has one (generation stops mid-sentence)."""
    ends = [m.end() for m in re.finditer(r"[.!?](\s|$)", line)]
    return line[: ends[-1]].strip() if ends else line.strip()


def candidate_logprobs(model: Any, tokenizer: Any, text: str, candidates: Sequence[str]) -> Any:
    """log p(" <candidate>\n" | text) for each candidate, (N,): one forward pass over ``text``,
    its KV cache repeated over the candidates, one batched pass over their tokens."""
    import torch

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), use_cache=True)
    return continuation_logprobs(model, tokenizer, out.logits[0, -1], out.past_key_values,
                                 candidates)


def continuation_logprobs(model: Any, tokenizer: Any, last_logits: Any, cache: Any,
                          candidates: Sequence[str]) -> Any:
    """Scores of ``candidate_logprobs`` from a context already in ``cache`` (consumed) whose
    last position predicted ``last_logits`` (V,)."""
    import torch

    newline = tokenizer("\n", add_special_tokens=False)["input_ids"][-1]
    conts = [tokenizer(f" {c}", add_special_tokens=False)["input_ids"] + [newline]
             for c in candidates]
    n, width, past = len(conts), max(len(c) for c in conts), cache.get_seq_length()
    with torch.inference_mode():
        first = torch.log_softmax(last_logits.float(), dim=-1)  # (V,) next token
        cache.batch_repeat_interleave(n)
        tokens = torch.full((n, width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((n, past + width), dtype=torch.long)
        mask[:, :past] = 1
        for row, cont in enumerate(conts):  # right padding after each continuation
            tokens[row, : len(cont)] = torch.tensor(cont)
            mask[row, past: past + len(cont)] = 1
        logits = model(input_ids=tokens, attention_mask=mask, past_key_values=cache).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # (N, W, V) predicts t+1
    scores = []
    for row, cont in enumerate(conts):
        rest = logprobs[row, torch.arange(len(cont) - 1), torch.tensor(cont[1:])]
        scores.append(float(first[cont[0]] + rest.sum()))
    return torch.tensor(scores)


class PrefilledTeacher:
    """Backend interface (``uscope.profile.backends.Backend``) over a local causal LM."""

    name = "transformers-prefilled"

    def __init__(self, model: str | os.PathLike | None = None,
                 generation: GenerationConfig | None = None, *,
                 loaded: tuple[Any, Any] | None = None, adapter: str | os.PathLike | None = None,
                 answer_tokens: int = 16):
        """``generation`` limits the reasoning line; ``answer_tokens`` a free answer line."""
        self.generation = generation or GenerationConfig()
        self.lm, self.tokenizer = loaded if loaded is not None else load_instruct_lm(
            model, adapter=adapter)
        pad_left(self.tokenizer)  # also for a pair loaded elsewhere
        self.answer_tokens = answer_tokens
        self.model = model_label(model, SMOLLM2_NAME) + (f"+{adapter}" if adapter else "")

    def _continue(self, texts: list[str], max_new_tokens: int) -> list[str]:
        """The first non-empty line of each text's continuation."""
        import torch

        if not texts:
            return []
        gen = self.generation
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True,
                                 add_special_tokens=False)
        sampling: dict[str, Any] = {"do_sample": False}
        if gen.temperature > 0:
            torch.manual_seed(gen.seed)
            sampling = {"do_sample": True, "temperature": gen.temperature, "top_p": gen.top_p}
        with torch.inference_mode():
            out = self.lm.generate(**encoded, max_new_tokens=max_new_tokens,
                                   repetition_penalty=gen.repetition_penalty,
                                   pad_token_id=self.tokenizer.pad_token_id,
                                   **sampling)  # (B, L_prompt + L_new)
        new = self.tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1]:],
                                          skip_special_tokens=True)
        return [t.strip().split("\n")[0].strip() for t in new]  # first non-empty line

    def generate(self, requests: Sequence[ProfileRequest]) -> list[Generation]:
        if not requests:
            return []
        heads = [t + REASONING_LABEL for t in chat_texts(self.tokenizer, requests)]
        replies: list[Generation | None] = [None] * len(requests)
        free = [i for i, r in enumerate(requests) if not getattr(r, "candidates", ())]
        if free:  # no candidates: reasoning and answer lines both generated, batched
            reasons = [whole_sentences(r) for r in self._continue(
                [heads[i] for i in free], self.generation.max_new_tokens)]
            tails = [f"{heads[i]} {r}\n{ANSWER_LABEL}" for i, r in zip(free, reasons)]
            for i, r, a in zip(free, reasons, self._continue(tails, self.answer_tokens)):
                replies[i] = Generation(f"{REASONING_LABEL} {r}\n{ANSWER_LABEL} {a}")
        for i, request in enumerate(requests):
            if replies[i] is None:
                reason, answer = self._reason_and_choose(heads[i], request.candidates, seed=i)
                replies[i] = Generation(f"{REASONING_LABEL} {reason}\n{ANSWER_LABEL} {answer}")
        return replies

    def _reason_and_choose(self, head: str, candidates: Sequence[str], seed: int
                           ) -> tuple[str, str]:
        """One reasoning line, then a candidate drawn from the model restricted to
        ``candidates`` (greedy: argmax); the prompt is encoded once and its KV cache reused."""
        import torch

        gen = self.generation
        head_ids = self.tokenizer(head, add_special_tokens=False)["input_ids"]
        sampling: dict[str, Any] = {"do_sample": False}
        if gen.temperature > 0:
            torch.manual_seed(gen.seed * 1_000_003 + seed)
            sampling = {"do_sample": True, "temperature": gen.temperature, "top_p": gen.top_p}
        with torch.inference_mode():
            out = self.lm.generate(input_ids=torch.tensor([head_ids]),
                                   attention_mask=torch.ones((1, len(head_ids)), dtype=torch.long),
                                   max_new_tokens=gen.max_new_tokens,
                                   repetition_penalty=gen.repetition_penalty,
                                   pad_token_id=self.tokenizer.pad_token_id,
                                   return_dict_in_generate=True, **sampling)
            written = self.tokenizer.decode(out.sequences[0, len(head_ids):],
                                            skip_special_tokens=True)
            reason = whole_sentences(written.strip().split("\n")[0])
            tail_ids = self.tokenizer(f"{head} {reason}\n{ANSWER_LABEL}",
                                      add_special_tokens=False)["input_ids"]
            cache = out.past_key_values
            if tail_ids[: len(head_ids)] == head_ids:  # keep the prompt's cache, feed the rest
                extra = cache.get_seq_length() - len(head_ids)
                if extra > 0:
                    cache.crop(-extra)  # drop the generated tokens
                feed = tail_ids[len(head_ids):]
            else:  # tokens merged across the boundary: encode the whole text again
                cache, feed = None, tail_ids
            step = self.lm(input_ids=torch.tensor([feed]), past_key_values=cache, use_cache=True)
        scores = continuation_logprobs(self.lm, self.tokenizer, step.logits[0, -1],
                                       step.past_key_values, candidates)  # (N,)
        if gen.temperature <= 0:
            return reason, candidates[int(torch.argmax(scores))]
        generator = torch.Generator().manual_seed(gen.seed * 1_000_003 + seed)
        weights = torch.softmax(scores / gen.temperature, dim=0)
        return reason, candidates[int(torch.multinomial(weights, 1, generator=generator))]
