"""The frozen sentence encoder [CLS]_enc(y_u) of eq. 24.

h_u = MLP([CLS]_enc(y_u)) (eq. 24): this module computes and stores the raw sentence embedding
[CLS]_enc(y_u) as the encoder's own sentence embedding (all-MiniLM-L6-v2 by default: 384-d, mean
pooling then L2 normalisation, as the model's modules.json defines it); the trainable MLP belongs
to the U-MASK model that consumes it. Nothing is added on top of the encoder's output.

Precision: "fp32" runs the model as loaded; "bf16" runs a copy of its transformer in bfloat16
(pooling and normalisation stay float32): about 3x the throughput on a CPU with AMX tiles, every
embedding within 0.9999 cosine of fp32 on profile texts. Without AMX, bf16 is slower than fp32
even where AVX512-BF16 exists (0.69x measured on such a 2-core Xeon), so the default is bf16 on
an AMX CPU and fp32 elsewhere; a non-fp32 precision is part of the encoder's label, so a resumed
job never mixes precisions.

Memory: every new (batch, length) shape makes oneDNN compile kernels, which oneDNN and
PyTorch's ideep layer each keep, up to 1,024 entries by default: about 2 MB a shape on this CPU
(900 MB more after 400 shapes, still growing), so a long job's memory followed the number of
distinct profile lengths it met. A bf16 encoder caps both caches at ``KERNEL_CACHE_CAPACITY``
unless the operator sized them (throughput on texts of 20-180 words was the same as with the
default). The variables are set only around the encoder's first call, which sizes the caches
(oneDNN's for the process; ideep's may be sized per thread, so encode from the thread that built
the encoder); child processes keep the defaults.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from uscope.models import MINILM_NAME, load_sentence_encoder, model_label

PRECISIONS = ("fp32", "bf16")
KERNEL_CACHE_CAPACITY = 64  # compiled oneDNN primitives kept (oneDNN's cache and ideep's)
# Texts per forward pass: a pass's activations are the encoder's momentary memory, and the
# largest such moment sets a batch job's peak (BENCHMARKS `encode-batch` and `profile-memory`).
ENCODE_BATCH_SIZE = 16


def bound_kernel_caches(capacity: int = KERNEL_CACHE_CAPACITY) -> list[str]:
    """Cap oneDNN's primitive cache and PyTorch's ideep cache through their environment
    variables, unless the operator set them; returns the names it set. They are read when the
    process (ideep: possibly each thread) builds its first oneDNN primitive."""
    added = []
    if not {"ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY"} & set(os.environ):
        added.append("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    if "LRU_CACHE_CAPACITY" not in os.environ:
        added.append("LRU_CACHE_CAPACITY")
    for name in added:
        os.environ[name] = str(capacity)
    return added


def _size_kernel_caches(model: Any) -> None:
    """One bf16 call with the caches capped, so that they are sized now; the variables then
    leave the environment, and child processes (a vLLM engine) keep their own defaults."""
    added = bound_kernel_caches()
    try:
        model.encode(["size the kernel caches"], show_progress_bar=False)
    finally:
        for name in added:
            os.environ.pop(name, None)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else a ValueError naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))} "
                         f"(or None for the device's default), got {precision!r}")
    return precision


def default_precision(device: Any = "cpu") -> str:
    """"bf16" on a CPU with AMX tiles (where bf16 matmuls are about 3x fp32), else "fp32"."""
    import torch

    if torch.device(device).type != "cpu":
        return "fp32"
    cpu = torch.cpu
    try:
        native = cpu._is_amx_tile_supported()
    except AttributeError:  # private probes: a torch without them gets the safe default
        native = False
    return "bf16" if native else "fp32"


def encoder_label(name_or_path: str | os.PathLike | None = None, precision: str | None = None,
                  *, label: str | None = None, device: Any = "cpu") -> str:
    """The provenance label of an encoder, without loading it: ``label`` (or the model's short
    name) with ``@precision`` appended unless the precision is fp32."""
    precision = default_precision(device) if precision is None else check_precision(precision)
    base = label or model_label(name_or_path, MINILM_NAME)
    suffix = f"@{precision}"
    return base if precision == "fp32" or base.endswith(suffix) else base + suffix


def label_precision(label: str) -> str:
    """The precision an ``encoder_label`` names: its ``@precision`` suffix, else "fp32"."""
    base, _, suffix = label.rpartition("@")
    return suffix if base and suffix in PRECISIONS else "fp32"


def _to_bf16(model: Any) -> Any:
    """``model`` with its first module (the transformer) in bfloat16 and that module's outputs
    cast back to float32, so pooling and normalisation still run in float32."""
    import torch

    def float_outputs(_module: Any, _args: Any, features: dict) -> dict:
        return {key: value.float() if torch.is_tensor(value) and value.is_floating_point()
                else value for key, value in features.items()}

    body = model[0].to(torch.bfloat16)
    body.register_forward_hook(float_outputs)
    return model


class ProfileEncoder:
    """Batched, offline sentence embeddings of profile texts."""

    def __init__(self, name_or_path: str | os.PathLike | None = None, *,
                 batch_size: int = ENCODE_BATCH_SIZE, loaded: Any = None,
                 label: str | None = None, precision: str | None = None):
        """``loaded`` = an already built ``SentenceTransformer`` to share between jobs (never
        modified: bf16 works on a copy); ``precision`` = one of ``PRECISIONS``, or None for
        ``default_precision`` of the model's device."""
        if precision is not None:
            check_precision(precision)  # before the (slow) model load
        model = loaded if loaded is not None else load_sentence_encoder(name_or_path)
        self.precision = default_precision(model.device) if precision is None else precision
        if self.precision == "bf16":
            model = _to_bf16(copy.deepcopy(model) if loaded is not None else model)
            _size_kernel_caches(model)
        self.model = model
        self.name_or_path = name_or_path  # None: the bundled MiniLM
        self.label = encoder_label(name_or_path, self.precision, label=label)
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension  # renamed in sentence-transformers 6
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[CLS]_enc of each text (eq. 24, before the MLP): float32 (N, dim), in input order.

        Identical texts are embedded once and their row is repeated."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        first: dict[str, int] = {}
        rows = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.intp,
                           count=len(texts))  # (N,) row of each text among the unique ones
        vectors = self.model.encode(list(first), batch_size=self.batch_size,
                                    convert_to_tensor=True,
                                    show_progress_bar=False)  # (U, dim)
        return vectors.float().cpu().numpy()[rows]
