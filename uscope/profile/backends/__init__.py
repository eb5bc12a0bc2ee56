"""Profile writers pi_theta (eq. 23) behind one interface; ``make_backend`` builds one by name.

Only the heuristic backend is imported eagerly; the LLM backends load their libraries when built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uscope.profile.backends.base import (
    Backend,
    Generation,
    GenerationConfig,
    Outcome,
    ProfileRequest,
    generate_with_retries,
)
from uscope.profile.backends.heuristic import HeuristicBackend, heuristic_profile


def _heuristic(model: str | None, generation: GenerationConfig, **options: Any) -> Backend:
    if model is not None:
        raise ValueError("the heuristic backend takes no model")
    if options:
        raise ValueError(f"the heuristic backend takes no options, got {sorted(options)}")
    return HeuristicBackend()


def _transformers(model: str | None, generation: GenerationConfig, **options: Any) -> Backend:
    from uscope.profile.backends.hf import TransformersBackend

    return TransformersBackend(model, generation, **options)


def _vllm(model: str | None, generation: GenerationConfig, **options: Any) -> Backend:
    from uscope.profile.backends.vllm_offline import VLLMBackend, VLLMConfig

    if model is None:
        raise ValueError("the vllm backend needs --model (a path or hub id)")
    return VLLMBackend(VLLMConfig(model=model, **options), generation)


def _openai(model: str | None, generation: GenerationConfig, **options: Any) -> Backend:
    from uscope.profile.backends.openai_compat import OpenAIBackend, OpenAIConfig

    config = OpenAIConfig(**({"model": model} if model else {}), **options)
    return OpenAIBackend(config, generation)


BACKENDS: dict[str, Callable[..., Backend]] = {
    "heuristic": _heuristic,
    "transformers": _transformers,
    "vllm": _vllm,
    "openai": _openai,
}


def make_backend(name: str, model: str | None = None, generation: GenerationConfig | None = None,
                 **options: Any) -> Backend:
    """A backend by name (one of ``BACKENDS``); ``options`` go to its config."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](model, generation or GenerationConfig(), **options)


__all__ = [
    "BACKENDS", "Backend", "Generation", "GenerationConfig", "HeuristicBackend", "Outcome",
    "ProfileRequest", "generate_with_retries", "heuristic_profile", "make_backend",
]
