"""The validated event table: the one format every later stage reads.

One row is one event of one anonymous user at one time: an app use, a visit to a place
(a check-in, a GPS fix, a base-station sighting), or both at once (an app used at a place).

A **missing app** (null ``app`` and ``app_category``) means the event records no app use: it
is a place observation only, not an unknown app. Stages count such events for places and
times but never as app use, and no reader or stage fills in an app that the data does not
name. A **missing place** (null ``location_id`` and coordinates) means the data records no
place for the event. Every event has at least one of the two.

| column          | dtype            | required | meaning                                             |
|-----------------|------------------|----------|-----------------------------------------------------|
| user_id         | string           | yes      | anonymous user or device id                         |
| timestamp       | datetime64[ns]   | yes (*) | local wall-clock time of the event (no time zone)   |
| app             | string, nullable | no       | app name or id; null when the event is no app use   |
| app_category    | string, nullable | no       | category of the app ("Unknown" when not mapped, null exactly when app is null) |
| location_id     | string, nullable | no       | base station or place id; null when not recorded    |
| location_category | string, nullable | no     | named POI cluster of the place (see locations.py)   |
| traffic_bytes   | Int64, nullable  | no       | bytes moved by the use; null when not recorded      |
| latitude        | float64          | no       | WGS84 latitude in degrees, NaN when not recorded    |
| longitude       | float64          | no       | WGS84 longitude in degrees, NaN when not recorded   |
| synthetic       | bool             | yes      | True for generated events (never in evaluation)     |
| uses            | Int64, nullable  | no       | how many uses the row stands for; null means one    |
| context         | string, nullable | no       | context buckets as ``key=value;key=value`` (Frappe) |

(*) ``timestamp`` is null only in a table whose source records no time at all (Frappe's
context buckets): ``has_times`` is False for it, and every stage that needs time (tensors,
temporal splits, time features) raises naming the field instead of guessing one. A table
mixes no timed and untimed rows.

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
    "uses",
    "context",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "timestamp")
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

    def reject(self, line: int, field_name: str, reason: str, raw: str,
               source: str | None = None) -> None:
        """Set a row aside; `source` names its file when the report spans several."""
        self.rejections.append(Rejection(source or self.source, line, field_name, reason, raw))

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
    """Fill optional columns and cast every column to its schema dtype (no row is dropped).

    The caller's table is never changed: columns are replaced on a shallow copy, never
    written in place, so an already valid table is not copied whole.
    """
    frame = frame.copy(deep=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"event table lacks required columns {missing}", field=missing[0])
    for column, default in (("app", None), ("app_category", None),
                            ("location_id", None), ("location_category", None),
                            ("traffic_bytes", None),
                            ("latitude", np.nan), ("longitude", np.nan), ("synthetic", False),
                            ("uses", None), ("context", None)):
        if column not in frame.columns:
            frame[column] = default
    frame["user_id"] = frame["user_id"].astype("string")
    app = frame["app"].astype("string").str.strip()
    frame["app"] = app.mask(app.eq(""))
    # a known app without a category is "Unknown"; an event with no app has no category either
    category = frame["app_category"].astype("string").fillna(UNKNOWN_CATEGORY)
    frame["app_category"] = category.mask(frame["app"].isna())
    frame["location_id"] = frame["location_id"].astype("string")
    frame["location_category"] = frame["location_category"].astype("string")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).astype("datetime64[ns]")
    for column in ("traffic_bytes", "uses"):  # already Int64: kept as is, not copied
        if frame[column].dtype != "Int64":
            frame[column] = pd.array(frame[column], dtype="Int64")
    frame["latitude"] = frame["latitude"].astype("float64")
    frame["longitude"] = frame["longitude"].astype("float64")
    frame["synthetic"] = frame["synthetic"].fillna(False).astype(bool)
    frame["context"] = frame["context"].astype("string")
    return frame[list(EVENT_COLUMNS)]


def validate_events(frame: pd.DataFrame, source: str = "<events>", *,
                    sort: bool = True) -> pd.DataFrame:
    """Check an event table against the schema and return it sorted by (user_id, timestamp).

    Raises ``DataError`` naming the first bad row (0-based table row) and field.
    ``sort=False`` keeps the rows in their order (and skips a copy of the whole table), for
    callers whose result does not depend on row order.
    """
    frame = normalise_dtypes(frame)
    bad = frame["user_id"].isna() | frame["user_id"].fillna("").str.strip().eq("")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError("missing value", source=source, line=row, field="user_id")
    untimed = frame["timestamp"].isna()
    if untimed.any() and not untimed.all():  # a table is timed throughout or not at all
        row = int(np.flatnonzero(untimed.to_numpy())[0])
        raise DataError("missing value (only a table with no times at all may lack them)",
                        source=source, line=row, field="timestamp")
    few = frame["uses"].fillna(1) < 1
    if few.any():
        row = int(np.flatnonzero(few.to_numpy())[0])
        raise DataError("uses must be >= 1", source=source, line=row, field="uses")
    neither = frame["app"].isna().to_numpy() & ~recorded_place(frame)
    if neither.any():
        row = int(np.flatnonzero(neither)[0])
        raise DataError("event has neither an app nor a place", source=source, line=row,
                        field="app")
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
    half = frame["latitude"].isna().to_numpy() != frame["longitude"].isna().to_numpy()
    if half.any():
        row = int(np.flatnonzero(half)[0])
        raise DataError("latitude and longitude must both be present or both missing",
                        source=source, line=row, field="latitude")
    if not sort:
        return frame
    return frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


def has_apps(frame: pd.DataFrame) -> bool:
    """Whether any event of the table is an app use."""
    return bool(frame["app"].notna().any())


def recorded_place(frame: pd.DataFrame) -> np.ndarray:
    """(n,) bool: the event records a place (an id, a category or coordinates)."""
    return (frame["location_id"].notna() | frame["location_category"].notna()
            | frame["latitude"].notna()).to_numpy()


def has_places(frame: pd.DataFrame) -> bool:
    """Whether any event of the table records a place (an id, a category or coordinates)."""
    return bool(recorded_place(frame).any())


def has_times(frame: pd.DataFrame) -> bool:
    """Whether the events carry timestamps (False only for untimed sources such as Frappe)."""
    return bool(len(frame)) and bool(frame["timestamp"].notna().all())


def require_times(frame: pd.DataFrame, what: str) -> None:
    """Raise naming the field when a stage that needs time gets an untimed table."""
    if len(frame) and not has_times(frame):
        raise DataError(f"{what} needs event times, and these events have none (the source "
                        "records context buckets, not times)", field="timestamp")


def use_counts(frame: pd.DataFrame) -> np.ndarray:
    """How many uses each row stands for (``uses``, null = 1)."""
    return frame["uses"].fillna(1).to_numpy(dtype=np.float64)


def parse_context(context: pd.Series) -> pd.DataFrame:
    """``key=value;key=value`` strings -> one column per key (missing keys -> null)."""
    pairs = context.fillna("").str.split(";")
    rows = [dict(p.split("=", 1) for p in row if "=" in p) for row in pairs]
    return pd.DataFrame(rows, index=context.index).replace({np.nan: None})



def app_events(frame: pd.DataFrame) -> pd.DataFrame:
    """The events that are app uses (rows with an app)."""
    return frame[frame["app"].notna()]


ROW_GROUP_ROWS = 1 << 17  # a reader holds one row group at a time: this bounds its memory


def save_events(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a validated event table as parquet (atomic: a temp file renamed into place),
    sorted by user and in row groups of ``ROW_GROUP_ROWS``, so that a job can read it in
    blocks of users (``uscope.profile.stream``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    validate_events(frame).to_parquet(tmp, index=False, row_group_size=ROW_GROUP_ROWS)
    tmp.replace(path)
    return path


def load_events(path: str | Path) -> pd.DataFrame:
    """Read an event table written by ``save_events``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"event table {path} does not exist")
    return validate_events(pd.read_parquet(path), source=str(path))
