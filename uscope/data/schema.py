"""The validated event table: the one format every later stage reads.

One row is one app use by one anonymous user at one time and (optionally) one place.

| column          | dtype            | required | meaning                                             |
|-----------------|------------------|----------|-----------------------------------------------------|
| user_id         | string           | yes      | anonymous user or device id                         |
| timestamp       | datetime64[ns]   | yes      | local wall-clock time of the use (no time zone)     |
| app             | string           | yes      | app name or id                                      |
| app_category    | string           | yes      | category of the app ("Unknown" when not mapped)     |
| location_id     | string, nullable | no       | base station or place id; null when not recorded    |
| location_category | string, nullable | no     | named POI cluster of the place (see locations.py)   |
| traffic_bytes   | Int64, nullable  | no       | bytes moved by the use; null when not recorded      |
| latitude        | float64          | no       | WGS84 latitude in degrees, NaN when not recorded    |
| longitude       | float64          | no       | WGS84 longitude in degrees, NaN when not recorded   |
| synthetic       | bool             | yes      | True for generated events (never in evaluation)     |

Rows are sorted by (user_id, timestamp). ``validate_events`` checks all of it and names the
offending row and field; readers call it before returning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

EVENT_COLUMNS: tuple[str, ...] = (
    "user_id",
    "timestamp",
    "app",
    "app_category",
    "location_id",
    "location_category",
    "traffic_bytes",
    "latitude",
    "longitude",
    "synthetic",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "app", "app_category")
UNKNOWN_CATEGORY = "Unknown"


class DataError(ValueError):
    """Bad input, with the file, line and field that caused it."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.source, self.line, self.field, self.reason = source, line, field, message
        where = ", ".join(
            part for part in (
                f"file {source}" if source else "",
                f"line {line}" if line is not None else "",
                f"field {field!r}" if field else "",
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)


@dataclass
class Rejection:
    """One input row set aside in lenient mode."""

    source: str
    line: int
    field: str
    reason: str
    raw: str


@dataclass
class ReadReport:
    """What a reader saw: every input row is either accepted or rejected (counts add up)."""

    source: str
    rows_in: int = 0
    accepted: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a reader changed on the way in

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def reject(self, line: int, field_name: str, reason: str, raw: str) -> None:
        self.rejections.append(Rejection(self.source, line, field_name, reason, raw))

    def check_balanced(self) -> None:
        if self.rows_in != self.accepted + self.rejected:
            raise AssertionError(
                f"{self.source}: {self.rows_in} rows in but {self.accepted} accepted "
                f"+ {self.rejected} rejected"
            )

    def write_rejects(self, path: str | Path) -> Path:
        """Write the rejected rows with their reasons as a tab-separated side file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(
            [vars(r) for r in self.rejections], columns=["source", "line", "field", "reason", "raw"]
        )
        frame.to_csv(path, sep="\t", index=False)
        return path

    def summary(self) -> str:
        return (f"{self.source}: {self.rows_in} rows in, {self.accepted} accepted, "
                f"{self.rejected} rejected")


def empty_events() -> pd.DataFrame:
    """An event table with no rows and the right dtypes."""
    return normalise_dtypes(pd.DataFrame({c: [] for c in EVENT_COLUMNS}))


def normalise_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill optional columns and cast every column to its schema dtype (no row is dropped)."""
    frame = frame.copy()
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"event table lacks required columns {missing}", field=missing[0])
    for column, default in (("location_id", None), ("location_category", None),
                            ("traffic_bytes", None),
                            ("latitude", np.nan), ("longitude", np.nan), ("synthetic", False)):
        if column not in frame.columns:
            frame[column] = default
    frame["user_id"] = frame["user_id"].astype("string")
    frame["app"] = frame["app"].astype("string")
    frame["app_category"] = frame["app_category"].astype("string").fillna(UNKNOWN_CATEGORY)
    frame["location_id"] = frame["location_id"].astype("string")
    frame["location_category"] = frame["location_category"].astype("string")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).astype("datetime64[ns]")
    frame["traffic_bytes"] = pd.array(frame["traffic_bytes"], dtype="Int64")
    frame["latitude"] = frame["latitude"].astype("float64")
    frame["longitude"] = frame["longitude"].astype("float64")
    frame["synthetic"] = frame["synthetic"].fillna(False).astype(bool)
    return frame[list(EVENT_COLUMNS)]


def validate_events(frame: pd.DataFrame, source: str = "<events>") -> pd.DataFrame:
    """Check an event table against the schema and return it sorted by (user_id, timestamp).

    Raises ``DataError`` naming the first bad row (0-based table row) and field.
    """
    frame = normalise_dtypes(frame)
    for column in ("user_id", "timestamp", "app"):
        bad = frame[column].isna()
        if column in ("user_id", "app"):
            bad |= frame[column].fillna("").str.strip().eq("")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError("missing value", source=source, line=row, field=column)
    negative = frame["traffic_bytes"].fillna(0) < 0
    if negative.any():
        row = int(np.flatnonzero(negative.to_numpy())[0])
        raise DataError("traffic_bytes must be >= 0", source=source, line=row,
                        field="traffic_bytes")
    for column, limit in (("latitude", 90.0), ("longitude", 180.0)):
        values = frame[column].to_numpy()
        out_of_range = np.abs(np.nan_to_num(values)) > limit
        if out_of_range.any():
            row = int(np.flatnonzero(out_of_range)[0])
            raise DataError(f"{column} outside [-{limit}, {limit}]", source=source, line=row,
                            field=column)
    if frame["latitude"].isna().to_numpy().tolist() != frame["longitude"].isna().to_numpy().tolist():
        row = int(np.flatnonzero(frame["latitude"].isna() != frame["longitude"].isna())[0])
        raise DataError("latitude and longitude must both be present or both missing",
                        source=source, line=row, field="latitude")
    return frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


def save_events(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a validated event table as parquet (atomic: a temp file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    validate_events(frame).to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def load_events(path: str | Path) -> pd.DataFrame:
    """Read an event table written by ``save_events``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"event table {path} does not exist")
    return validate_events(pd.read_parquet(path), source=str(path))
