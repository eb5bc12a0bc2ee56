"""The frozen sentence encoder [CLS]_enc(y_u) of eq. 24.

h_u = MLP([CLS]_enc(y_u)) (eq. 24): this module computes and stores the raw sentence embedding
[CLS]_enc(y_u) as the encoder's own sentence embedding (all-MiniLM-L6-v2 by default: 384-d, mean
pooling then L2 normalisation, as the model's modules.json defines it); the trainable MLP belongs
to the U-MASK model that consumes it. Nothing is added on top of the encoder's output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from uscope.models import MINILM_NAME, load_sentence_encoder, model_label


class ProfileEncoder:
    """Batched, offline sentence embeddings of profile texts."""

    def __init__(self, name_or_path: str | os.PathLike | None = None, *, batch_size: int = 32,
                 loaded: Any = None, label: str | None = None):
        """``loaded`` = an already built ``SentenceTransformer`` to share between jobs."""
        self.model = loaded if loaded is not None else load_sentence_encoder(name_or_path)
        self.name_or_path = name_or_path  # None: the bundled MiniLM
        self.label = label or model_label(name_or_path, MINILM_NAME)
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension  # renamed in sentence-transformers 6
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[CLS]_enc of each text (eq. 24, before the MLP): float32 (N, dim)."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=self.batch_size,
                                    convert_to_numpy=True,
                                    show_progress_bar=False)  # (N, dim)
        return np.asarray(vectors, dtype=np.float32)
