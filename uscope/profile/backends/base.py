"""The one small interface every profile writer pi_theta (eq. 23) implements, and retries.

A backend takes a batch of ``ProfileRequest`` (prompt x_u plus the features it came from) and
returns one ``Generation`` per request, in order: the text y_u, or an error. A backend never
raises for one bad item; ``generate_with_retries`` re-submits items that failed or came back
empty and, when retries run out, reports the reason so the batch can go on. The one exception
it lets through is ``AnswersPending``: a replaying backend has no answer yet, no item failed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from uscope.profile.features import UserFeatures
from uscope.profile.prompting import Prompt


@dataclass(frozen=True)
class ProfileRequest:
    """What a backend sees for one user."""

    user_id: str
    prompt: Prompt
    features: UserFeatures


@dataclass(frozen=True)
class Generation:
    """A backend's answer for one request: text, or the reason there is none."""

    text: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.text and self.text.strip())


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings shared by the LLM backends."""

    max_new_tokens: int = 160
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    repetition_penalty: float = 1.1
    seed: int = 0  # used when temperature > 0
    complete_sentences: bool = True  # cut the text after its last sentence end

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")


def finished_text(text: str | None, generation: GenerationConfig) -> Generation:
    """A generated text as a ``Generation``: cut after its last sentence end when
    ``complete_sentences`` is set, an error when it holds no complete sentence."""
    if text is None or not generation.complete_sentences:
        return Generation(text.strip() if text is not None else None)
    from uscope.profile.faithfulness import end_at_sentence

    whole = end_at_sentence(text)
    if whole is None and text.strip():
        return Generation(None, f"no complete sentence within {generation.max_new_tokens} "
                                "new tokens")
    return Generation(whole or "")


class AnswersPending(Exception):
    """A backend that replays answers computed elsewhere (``uscope.profile.ray_llm``) lacks
    some a call needs: ``asks`` lists them. ``generate_with_retries`` re-raises it without
    counting an attempt."""

    def __init__(self, asks: list):
        super().__init__(f"{len(asks)} answers pending")
        self.asks = asks


@runtime_checkable
class Backend(Protocol):
    """pi_theta(y | x_u) of eq. 23, batched."""

    name: str  # backend kind, e.g. "heuristic"
    model: str  # the model it runs, for provenance

    def generate(self, requests: Sequence[ProfileRequest]) -> list[Generation]: ...


@dataclass(frozen=True)
class Outcome:
    """Final result for one user after retries."""

    user_id: str
    text: str | None
    error: str | None
    attempts: int


def _failure(generation: Generation) -> str:
    if generation.error:
        return generation.error
    return "empty text" if generation.text is not None else "no text returned"


def _call(backend: Backend, batch: Sequence[ProfileRequest]) -> list[Generation]:
    try:
        results = list(backend.generate(batch))
    except AnswersPending:
        raise
    except Exception as exc:  # noqa: BLE001 -- a batch crash fails its items, with the reason
        return [Generation(None, f"{type(exc).__name__}: {exc}") for _ in batch]
    if len(results) != len(batch):
        return [Generation(None, f"backend returned {len(results)} results for {len(batch)} "
                                 "requests") for _ in batch]
    return results


def generate_with_retries(backend: Backend, requests: Sequence[ProfileRequest], *,
                          retries: int = 2, backoff_s: float = 0.5) -> list[Outcome]:
    """Generate for every request; failed or empty items are retried up to ``retries`` times.

    Waits ``backoff_s * 2**k`` before retry k. Never raises for a failing item: its outcome
    carries the last reason (``text`` is None).
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    latest: list[Generation | None] = [None] * len(requests)
    attempts = [0] * len(requests)
    pending = list(range(len(requests)))
    for k in range(retries + 1):
        if not pending:
            break
        if k > 0 and backoff_s > 0:
            time.sleep(backoff_s * 2 ** (k - 1))
        results = _call(backend, [requests[i] for i in pending])
        for i, result in zip(pending, results):
            latest[i] = result
            attempts[i] += 1
        pending = [i for i in pending if not latest[i].ok]
    outcomes = []
    for request, result, n in zip(requests, latest, attempts):
        if result.ok:
            outcomes.append(Outcome(request.user_id, result.text.strip(), None, n))
        else:
            outcomes.append(Outcome(request.user_id, None, f"{_failure(result)} "
                                    f"(after {n} attempt{'s' if n != 1 else ''})", n))
    return outcomes
