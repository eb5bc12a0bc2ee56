"""``ProfileSet``: U-SCOPE's public output, one row per user (prompt x_u, profile y_u, embedding).

The embedding column holds [CLS]_enc(y_u) of eq. 24 (before U-MASK's MLP); failed users keep a
row with ``status == "failed"``, the reason in ``error`` and no embedding, so nobody is lost
silently. Saved as parquet (atomic write) and loaded back with the same dtypes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from uscope.data.schema import DataError

FORMAT_VERSION = 1
STATUS_OK, STATUS_FAILED = "ok", "failed"
_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("prompt", pa.string()),
    ("profile", pa.string()),
    ("backend", pa.string()),
    ("model", pa.string()),
    ("template_version", pa.string()),
    ("encoder", pa.string()),
    ("n_events", pa.int64()),
    ("n_used", pa.int64()),
    ("truncated", pa.bool_()),
    ("attempts", pa.int64()),
    ("created_at", pa.timestamp("us", tz="UTC")),  # when the profile was written
    ("embedding", pa.list_(pa.float32())),
])
COLUMNS: tuple[str, ...] = tuple(_SCHEMA.names)


@dataclass
class ProfileSet:
    """Profiles of a set of users; ``frame`` has the columns of ``COLUMNS``."""

    frame: pd.DataFrame

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise DataError(f"profile table lacks columns {missing}", field=missing[0])
        frame = self.frame[list(COLUMNS)].reset_index(drop=True)
        for name in COLUMNS:  # one dtype per column, whether built in memory or loaded
            kind = _SCHEMA.field(name).type
            if pa.types.is_string(kind):
                frame[name] = frame[name].astype("str")
            elif pa.types.is_integer(kind):
                frame[name] = frame[name].astype("int64")
            elif pa.types.is_boolean(kind):
                frame[name] = frame[name].astype(bool)
            elif pa.types.is_timestamp(kind):
                frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
        self.frame = frame

    @classmethod
    def empty(cls) -> ProfileSet:
        return cls(_SCHEMA.empty_table().to_pandas())

    @classmethod
    def concat(cls, parts: Iterable[ProfileSet]) -> ProfileSet:
        frames = [p.frame for p in parts if len(p)]
        return cls(pd.concat(frames, ignore_index=True)) if frames else cls.empty()

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def user_ids(self) -> list[str]:
        return self.frame["user_id"].astype(str).tolist()

    @property
    def ok(self) -> ProfileSet:
        return ProfileSet(self.frame[self.frame["status"] == STATUS_OK])

    @property
    def failures(self) -> pd.DataFrame:
        """(user_id, error) of the users whose profile could not be written."""
        failed = self.frame[self.frame["status"] == STATUS_FAILED]
        return failed[["user_id", "error"]].reset_index(drop=True)

    @property
    def dim(self) -> int:
        lengths = {len(e) for e in self.frame["embedding"] if e is not None}
        if len(lengths) > 1:
            raise DataError(f"embeddings of different sizes {sorted(lengths)}", field="embedding")
        return lengths.pop() if lengths else 0

    def embeddings(self) -> np.ndarray:
        """h_u before the MLP, float32 (N, D); rows of failed users are NaN."""
        out = np.full((len(self), self.dim), np.nan, dtype=np.float32)  # (N, D)
        for i, e in enumerate(self.frame["embedding"]):
            if e is not None:
                out[i] = np.asarray(e, dtype=np.float32)
        return out

    def profile_of(self, user_id: str) -> str | None:
        rows = self.frame.loc[self.frame["user_id"] == user_id, "profile"]
        if rows.empty:
            raise KeyError(f"no profile for user {user_id!r}")
        text = rows.iloc[0]
        return None if pd.isna(text) else str(text)

    def to_arrow(self) -> pa.Table:
        frame = self.frame.copy()
        frame["embedding"] = [None if e is None else np.asarray(e, dtype=np.float32)
                              for e in frame["embedding"]]
        table = pa.Table.from_pandas(frame, schema=_SCHEMA, preserve_index=False)
        meta = {b"uscope.profileset": json.dumps({"format_version": FORMAT_VERSION}).encode()}
        return table.replace_schema_metadata(meta)

    def save(self, path: str | os.PathLike) -> Path:
        """Write parquet atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(self.to_arrow(), tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ProfileSet:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"profile set {path} does not exist")
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"not a readable parquet file: {exc}", source=str(path)) from exc
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise DataError(f"not a profile set: lacks columns {missing}", source=str(path),
                            field=missing[0])
        frame = table.select(list(COLUMNS)).cast(_SCHEMA).to_pandas()
        frame["embedding"] = [None if e is None else np.asarray(e, dtype=np.float32)
                              for e in frame["embedding"]]
        return cls(frame)

    @staticmethod
    def write_concatenated(parts: Iterable[str | os.PathLike], path: str | os.PathLike) -> Path:
        """Concatenate saved profile sets into one file, a part at a time (atomic)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        meta = {b"uscope.profileset": json.dumps({"format_version": FORMAT_VERSION}).encode()}
        schema = _SCHEMA.with_metadata(meta)
        with pq.ParquetWriter(tmp, schema) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part).select(list(COLUMNS)).cast(schema))
        os.replace(tmp, path)
        return path

    def summary(self) -> str:
        n_failed = int((self.frame["status"] == STATUS_FAILED).sum())
        return (f"{len(self)} users: {len(self) - n_failed} profiled, {n_failed} failed, "
                f"{int(self.frame['truncated'].sum())} with truncated history")
