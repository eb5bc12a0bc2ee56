"""Per-user constrained decoding on a ``transformers`` causal LM, many users in one batch.

Each row of a batch decodes under its own regular expression (a user's JSON Schema through
``outlines_core.json_schema.build_regex_from_schema``), so users whose allowed values differ
still share one ``generate`` call: ``RowGuides`` is a logits processor that keeps one
outlines-core ``Guide`` per row and masks that row's logits to the tokens its guide allows.

The vocabulary handed to outlines-core holds each token's exact bytes (byte-level BPE tokens
are mapped back through the GPT-2 byte table, SentencePiece ``<0xNN>`` tokens to their byte),
so names in any script are reachable: a string vocabulary loses the tokens that hold part of
a UTF-8 character, which netfp's Chinese category names need.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

SPIECE_SPACE = "\u2581"  # SentencePiece's word-boundary marker


@lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    """Inverse of the GPT-2 byte-level table: printable bytes stand for themselves, the other
    bytes for the code points from 256 upwards, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[chr(byte)] = byte
        else:
            table[chr(256 + extra)] = byte
            extra += 1
    return table


def _byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    parts = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return any(part.get("type") == "ByteLevel" for part in parts)


def token_bytes(tokenizer: Any) -> dict[int, bytes]:
    """The bytes each ordinary token stands for (special tokens left out)."""
    special = set(tokenizer.all_special_ids)
    table = _unicode_to_byte() if _byte_level(tokenizer) else None
    out = {}
    for token, token_id in tokenizer.get_vocab().items():
        if token_id in special:
            continue
        if table is not None:
            if all(ch in table for ch in token):
                out[token_id] = bytes(table[ch] for ch in token)
        elif len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            out[token_id] = bytes([int(token[3:5], 16)])
        else:
            out[token_id] = token.replace(SPIECE_SPACE, " ").encode("utf-8")
    return out


def byte_vocabulary(tokenizer: Any):
    """An ``outlines_core.Vocabulary`` of exact token bytes; cached on the tokenizer."""
    cached = getattr(tokenizer, "_uscope_byte_vocabulary", None)
    if cached is not None:
        return cached
    from outlines_core import Vocabulary

    if tokenizer.eos_token_id is None:
        raise ValueError("constrained decoding needs a tokenizer with an end-of-sequence token")
    by_bytes: dict[bytes, list[int]] = {}
    for token_id, raw in token_bytes(tokenizer).items():
        if raw:
            by_bytes.setdefault(raw, []).append(token_id)
    vocabulary = Vocabulary(tokenizer.eos_token_id, by_bytes)
    tokenizer._uscope_byte_vocabulary = vocabulary
    return vocabulary


def regex_of_schema(schema: dict) -> str:
    """The regular expression of a JSON Schema, compact (no whitespace between tokens)."""
    from outlines_core.json_schema import build_regex_from_schema

    return build_regex_from_schema(json.dumps(schema, ensure_ascii=False), "")


class RowGuides:
    """A ``transformers`` logits processor: row i may only continue along regex i."""

    def __init__(self, indexes: Sequence[Any], eos_token_id: int):
        from outlines_core import Guide

        self.guides = [Guide(index) for index in indexes]
        self.eos_token_id = eos_token_id
        self.done = [False] * len(indexes)
        self.steps = 0
        self._masks: list[Any] = []

    def __call__(self, input_ids, scores):
        from outlines_core.kernels.torch import (
            allocate_token_bitmask,
            apply_token_bitmask_inplace,
            fill_next_token_bitmask,
        )

        if self.steps == 0:  # one bitmask row per batch row, applied in one call
            self._masks = [allocate_token_bitmask(scores.shape[1]) for _ in self.guides]
        else:  # book the token each row chose at the previous step
            for i, guide in enumerate(self.guides):
                if self.done[i]:
                    continue
                token = int(input_ids[i, -1])
                if token == self.eos_token_id:
                    self.done[i] = True
                else:
                    guide.advance(token)
        self.steps += 1
        for i, guide in enumerate(self.guides):
            if self.done[i]:
                self._masks[i].fill_(-1)  # a finished row only pads: leave it unmasked
            else:
                fill_next_token_bitmask(guide, self._masks[i])
        import torch

        apply_token_bitmask_inplace(scores, torch.cat(self._masks).to(scores.device))
        return scores

    def finished(self, last_tokens: Sequence[int]) -> list[bool]:
        """Whether each row's output matches its whole regex, once the last token generated
        (``last_tokens``, one per row) is booked."""
        out = []
        for i, (guide, token) in enumerate(zip(self.guides, last_tokens)):
            if not self.done[i] and self.steps > 0 and int(token) != self.eos_token_id:
                guide.advance(int(token))
            out.append(self.done[i] or int(token) == self.eos_token_id or guide.is_finished())
        return out


@dataclass(frozen=True)
class Constrained:
    """One row's output: the text, and whether it completed its regex within the budget."""

    text: str
    complete: bool


def _index(tokenizer: Any, regex: str):
    cache = tokenizer.__dict__.setdefault("_uscope_indexes", {})
    if regex not in cache:
        from outlines_core import Index

        if len(cache) >= 4096:
            cache.clear()
        cache[regex] = Index(regex, byte_vocabulary(tokenizer))
    return cache[regex]


def generate_constrained(lm: Any, tokenizer: Any, prompts: Sequence[str],
                         regexes: Sequence[str], *, max_new_tokens: int,
                         temperature: float = 0.0, seed: int = 0,
                         repetition_penalty: float = 1.0) -> list[Constrained]:
    """Decode each chat-templated prompt under its regex, all rows in one ``generate`` call
    (the tokenizer pads on the left)."""
    import torch
    from transformers import LogitsProcessorList

    if len(prompts) != len(regexes):
        raise ValueError(f"{len(prompts)} prompts for {len(regexes)} regexes")
    if not prompts:
        return []
    from uscope.models import pad_left

    pad_left(tokenizer)  # row i's last token is input_ids[i, -1]
    guides = RowGuides([_index(tokenizer, r) for r in regexes], tokenizer.eos_token_id)
    encoded = tokenizer(list(prompts), return_tensors="pt", padding=True,
                        add_special_tokens=False)
    sampling: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0}
    with torch.inference_mode():
        out = lm.generate(**encoded, max_new_tokens=max_new_tokens,
                          logits_processor=LogitsProcessorList([guides]),
                          repetition_penalty=repetition_penalty,
                          pad_token_id=tokenizer.pad_token_id, **sampling)  # (B, L + L_new)
    new = out[:, encoded["input_ids"].shape[1]:]
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    return [Constrained(t, ok) for t, ok in zip(texts, guides.finished(out[:, -1].tolist()))]
