"""Synthetic events stay out of evaluation, and live in their own files.

Sec. 5.2: the augmented set H~_u is used only during training. The split code of every
evaluation (``uscope.data.splits.novelty_split``, ``uscope.recommend.evaluate``,
``generative.intent.protocol``) calls ``require_real`` and fails loudly - there is no lenient
mode that drops synthetic rows, because a table that mixes them into an evaluation is a
pipeline bug, not dirty data. ``require_real`` and ``SyntheticInEvaluation`` are defined in the
data layer (``uscope.data.splits``: the novelty split there needs them, and data flows one way)
and re-exported here. Generated events are written by ``save_synthetic`` to a separate file in
the event schema, every row ``synthetic=True``; ``load_synthetic`` checks that on the way back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from uscope.data.schema import DataError, load_events, save_events, validate_events
from uscope.data.splits import SyntheticInEvaluation, require_real

__all__ = ["SyntheticInEvaluation", "load_synthetic", "require_real", "save_synthetic"]


def save_synthetic(events: pd.DataFrame, path: str | os.PathLike,
                   real_path: str | os.PathLike | None = None) -> Path:
    """Write generated events (all ``synthetic=True``) to their own parquet file."""
    path = Path(path)
    if real_path is not None and path.resolve() == Path(real_path).resolve():
        raise ValueError(f"{path} is the real event file; synthetic events go to a separate file")
    frame = validate_events(events, source=str(path))
    flags = frame["synthetic"].to_numpy(dtype=bool)
    if not flags.all():
        row = int(np.flatnonzero(~flags)[0])
        raise DataError("only generated events (synthetic=True) may be saved as synthetic",
                        source=str(path), line=row, field="synthetic")
    return save_events(frame, path)


def load_synthetic(path: str | os.PathLike) -> pd.DataFrame:
    """Read a file written by ``save_synthetic``; every row must be flagged synthetic."""
    frame = load_events(path)
    flags = frame["synthetic"].to_numpy(dtype=bool)
    if not flags.all():
        row = int(np.flatnonzero(~flags)[0])
        raise DataError("a synthetic event file holds a real (synthetic=False) row",
                        source=str(path), line=row, field="synthetic")
    return frame
