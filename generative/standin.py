"""A deterministic stand-in for the U-SCOPE user embedding h_u (U-MASK paper eq. 4, 24).

Until profiles from ``uscope.profile`` are available, experiments condition on
``histogram_embedding``: a fixed Gaussian random projection (seeded) of each user's
app-category share and hour-of-slot activity profile over a history window, l2-normalised like a
sentence embedding. It is NOT the U-SCOPE embedding; it only carries the same kind of information
(what a user uses and when) so that U-MASK can be exercised before profiles exist.
"""

from __future__ import annotations

import numpy as np


def histogram_embedding(values: np.ndarray, channel_idx: list[int], history_slots: int,
                        dim: int = 384, seed: int = 0) -> np.ndarray:
    """values: (N, C, T, H, W) in [0, 1]; uses channels ``channel_idx`` of slots [0, history_slots).

    Returns (N, dim) float32 rows of unit norm.
    """
    v = np.asarray(values, dtype=np.float64)[:, channel_idx, :history_slots]  # (N, C', T', H, W)
    per_channel = v.sum(axis=(2, 3, 4))                                     # (N, C')
    share = per_channel / np.maximum(per_channel.sum(1, keepdims=True), 1e-9)
    per_slot = v.sum(axis=(1, 3, 4))                                        # (N, T')
    timing = per_slot / np.maximum(per_slot.sum(1, keepdims=True), 1e-9)
    level = np.log1p(per_channel.sum(1, keepdims=True))                     # (N, 1)
    features = np.concatenate([share, timing, level], axis=1)
    rng = np.random.default_rng(seed)
    proj = rng.standard_normal((features.shape[1], dim)) / np.sqrt(features.shape[1])
    emb = features @ proj
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
    return emb.astype(np.float32)
