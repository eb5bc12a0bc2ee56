"""h_u for the generative models: U-SCOPE embeddings aligned to a batch's user order.

A ``ProfileSet`` (``uscope.profile``) holds one row per user id, in whatever order profiling
wrote them; a tensor batch (``BehaviourTensors.user_ids``) or an intent protocol
(``IntentSequences.user_ids``) has its own order. ``align_embeddings`` returns the (N, D)
rows of h_u in the batch's order, looked up by user id, so a model never conditions one user
on another's profile. Users with no usable profile (absent, or ``status == "failed"``) raise
a ``DataError`` naming them, unless ``missing="mean"`` gives them the mean embedding of the
profiled users (a population prior; the number of such users is reported by the caller).

>>> from uscope.profile import ProfileSet
>>> h = align_embeddings(ProfileSet.load("profiles.parquet"), batch.user_ids)   # (N, 384)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uscope.data.schema import DataError
from uscope.profile.profileset import ProfileSet

MISSING_POLICIES = ("error", "mean")


def missing_users(profiles: ProfileSet, user_ids: Sequence[str]) -> list[str]:
    """The ids of ``user_ids`` with no usable embedding in ``profiles`` (absent or failed)."""
    ok = set(profiles.ok.user_ids)
    return [str(u) for u in user_ids if str(u) not in ok]


def align_embeddings(profiles: ProfileSet, user_ids: Sequence[str], missing: str = "error",
                     source: str = "profiles") -> np.ndarray:
    """h_u of ``user_ids`` in that order, float32 (N, D), looked up by user id.

    ``missing="error"``: raise naming the users without a usable profile; ``"mean"``: give
    them the mean h_u of the profiled users of ``user_ids``.
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    ok = profiles.ok
    if profiles.dim == 0 or not len(ok):
        raise DataError("the profile set holds no embeddings", source=source, field="embedding")
    frame = ok.frame.drop_duplicates("user_id", keep="first")
    row_of = {str(u): i for i, u in enumerate(frame["user_id"])}
    table = ProfileSet(frame).embeddings()                          # (P, D)
    absent = [str(u) for u in user_ids if str(u) not in row_of]
    if absent and missing == "error":
        failed = set(profiles.failures["user_id"].astype(str)) & set(absent)
        shown = ", ".join(repr(u) for u in absent[:5]) + (", ..." if len(absent) > 5 else "")
        detail = f" ({len(failed)} of them failed profiling)" if failed else ""
        raise DataError(f"{len(absent)} of {len(user_ids)} users have no profile{detail}: "
                        f"{shown}; profile them, or fill them with the mean h_u "
                        "(missing='mean', CLI --missing-profiles mean)", source=source,
                        field="user_id")
    present = [row_of[str(u)] for u in user_ids if str(u) in row_of]
    if not present:
        raise DataError(f"none of the {len(user_ids)} users has a profile", source=source,
                        field="user_id")
    fill = table[present].mean(axis=0)
    out = np.stack([table[row_of[str(u)]] if str(u) in row_of else fill for u in user_ids])
    return out.astype(np.float32)                                   # (N, D)


__all__ = ["MISSING_POLICIES", "align_embeddings", "missing_users"]
