"""The Gibbs view of U-SCOPE (eq. 22): p(P_u | H_u) proportional to exp(-E(H_u, P_u)).

The paper leaves the energy E unspecified ("semantic compatibility between observed behaviour and
a hypothesised intent profile"). Here it is made concrete with the frozen encoder of eq. 24:
E(H_u, P_u) = 1 - cos(enc(y_u), enc(s_u)), where s_u is the factual statement of H_u written by
the heuristic writer from the same features. E is 0 for a profile that says exactly what the
features say and grows as a profile drifts from them. Over a set of candidate profiles of one
user the Gibbs posterior is softmax(-E / temperature); it ranks samples (e.g. to pick the
preferred y_w of a DPO pair, eq. 27) without training anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uscope.profile.backends.heuristic import heuristic_profile
from uscope.profile.encoder import ProfileEncoder
from uscope.profile.features import UserFeatures


def profile_energy(features: UserFeatures, candidates: Sequence[str],
                   encoder: ProfileEncoder) -> np.ndarray:
    """E(H_u, P_u) (eq. 22) of each candidate profile text of one user: (K,), in [0, 2]."""
    if len(candidates) == 0:
        return np.zeros(0)
    vectors = encoder.encode([heuristic_profile(features), *candidates])  # (1 + K, D)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    return np.clip(1.0 - unit[1:] @ unit[0], 0.0, 2.0)  # (K,)


def gibbs_posterior(energies: np.ndarray, temperature: float = 0.05) -> np.ndarray:
    """p(P_u | H_u) over candidates: softmax(-E / temperature) (eq. 22)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = -np.asarray(energies, dtype=np.float64) / temperature  # (K,)
    logits -= logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()
