"""pi_theta (eq. 23) behind any OpenAI-compatible chat endpoint (``vllm serve``, a teacher, ...).

Plain HTTP with the standard library: ``POST {base_url}/chat/completions``. Each request has a
timeout; at most ``concurrency`` requests are in flight; a failed request (timeout, HTTP error,
malformed answer) becomes a ``Generation`` with the reason, and ``generate_with_retries``
re-submits it.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from uscope.profile.backends.base import (
    Generation,
    GenerationConfig,
    ProfileRequest,
    finished_text,
)
from uscope.profile.grounded import GroundedOrFree, GroundedStats


@dataclass(frozen=True)
class OpenAIConfig:
    """Where the endpoint is and how hard to push it."""

    base_url: str = "http://localhost:8000/v1"
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key
    timeout_s: float = 60.0
    concurrency: int = 8

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")


def chat_payload(request: ProfileRequest, model: str, generation: GenerationConfig
                 ) -> dict[str, Any]:
    """The JSON body of one chat-completions call."""
    body: dict[str, Any] = {
        "model": model,
        "messages": request.prompt.messages,
        "max_tokens": generation.max_new_tokens,
        "temperature": generation.temperature,
    }
    if generation.temperature > 0:
        body.update(top_p=generation.top_p, seed=generation.seed)
    return body


def parse_chat_response(body: Any) -> str:
    """The assistant text of a chat-completions answer; ValueError when the shape is wrong."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"malformed chat-completions response: {str(body)[:200]}") from exc
    if content is not None and not isinstance(content, str):
        raise ValueError(f"message content is {type(content).__name__}, not text")
    return content or ""


class OpenAIBackend(GroundedOrFree):
    """Concurrent chat-completions calls with per-request timeouts."""

    name = "openai"

    def __init__(self, config: OpenAIConfig, generation: GenerationConfig | None = None):
        self.config = config
        self.generation = generation or GenerationConfig()
        self.model = config.model
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self.names: set[str] = set()  # the population's names, for grounded profiles
        self.grounded_stats = GroundedStats()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.config.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, payload: dict[str, Any]) -> str | Generation:
        """The answer text of one call, or a failed ``Generation`` saying why."""
        data = json.dumps(payload).encode("utf-8")
        http = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(http, timeout=self.config.timeout_s) as response:
                body = json.loads(response.read().decode("utf-8"))
            return parse_chat_response(body)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:200]
            return Generation(None, f"HTTP {exc.code} from {self.url}: {detail}")
        except TimeoutError:
            return Generation(None, f"timed out after {self.config.timeout_s:g} s")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                return Generation(None, f"timed out after {self.config.timeout_s:g} s")
            return Generation(None, f"cannot reach {self.url}: {exc.reason}")
        except (ValueError, OSError) as exc:
            return Generation(None, f"{type(exc).__name__}: {exc}")

    def _one(self, indexed: tuple[int, ProfileRequest]) -> Generation:
        i, request = indexed  # a seed per request: repeated prompts sample differently
        generation = replace(self.generation, seed=self.generation.seed + i)
        answer = self._post(chat_payload(request, self.model, generation))
        return answer if isinstance(answer, Generation) else finished_text(answer,
                                                                          self.generation)

    def _map(self, fn, items: Sequence) -> list:
        workers = min(self.config.concurrency, len(items))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, items))

    def decode_constrained(self, conversations: Sequence[list[dict]], regexes: Sequence[str],
                           max_new_tokens: int, temperature: float) -> list[tuple[str, bool]]:
        """Each conversation under its regex, sent as vLLM's ``structured_outputs`` extension
        (``vllm serve``); a server that ignores it answers freely, and ``parse_fields`` then
        keeps only allowed values."""
        def one(pair) -> tuple[str, bool]:
            messages, regex = pair
            answer = self._post({"model": self.model, "messages": messages,
                                 "max_tokens": max_new_tokens, "temperature": temperature,
                                 "structured_outputs": {"regex": regex}})
            failed = answer.error if isinstance(answer, Generation) else None
            if failed:  # fails the batch: the job retries it
                raise RuntimeError(failed)
            return answer, True

        return self._map(one, list(zip(conversations, regexes)))

    def generate_free(self, requests: Sequence[ProfileRequest]) -> list[Generation]:
        return self._map(self._one, list(enumerate(requests)))
