"""Generic readers: CSV, parquet or a Hugging Face ``datasets.Dataset`` with a column mapping.

``column_map`` maps schema columns to the source's names, e.g.
``{"user_id": "uid", "timestamp": "ts", "app": "package"}``. Missing optional columns are null.
App categories come from a column, a mapping ``app_categories``, or are ``Unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uscope.data.parsing import RowChecker, check_errors_mode
from uscope.data.schema import (
    EVENT_COLUMNS,
    REQUIRED_COLUMNS,
    UNKNOWN_CATEGORY,
    DataError,
    ReadReport,
    validate_events,
)


def _load_frame(source: Any, split: str | None) -> tuple[pd.DataFrame, str, int]:
    """The source as a DataFrame, its name, and the line number of its first data row."""
    if isinstance(source, pd.DataFrame):
        return source, "<DataFrame>", 0
    if hasattr(source, "to_pandas") and hasattr(source, "column_names"):  # datasets.Dataset
        return source.to_pandas(), "<datasets.Dataset>", 0
    if hasattr(source, "keys") and hasattr(source, "column_names"):  # datasets.DatasetDict
        if split is None:
            raise DataError(f"a DatasetDict needs split=, one of {list(source.keys())}")
        return source[split].to_pandas(), f"<datasets.DatasetDict[{split}]>", 0
    path = Path(source)
    if not path.exists():
        raise DataError("file does not exist", source=str(path))
    if path.suffix in (".parquet", ".pq"):
        return pd.read_parquet(path), str(path), 0
    if path.suffix in (".csv", ".tsv", ".txt"):
        sep = "\t" if path.suffix == ".tsv" else ","
        try:
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 ({exc.reason}); pass encoding via a DataFrame",
                            source=str(path)) from None
        except pd.errors.EmptyDataError:
            raise DataError("empty file: expected a header line", source=str(path),
                            line=1) from None
        return frame, str(path), 2  # header is line 1
    raise DataError(f"unsupported file type {path.suffix!r} (csv, tsv, parquet)",
                    source=str(path))


def read_events(source: Any, column_map: Mapping[str, str] | None = None, *,
                app_categories: Mapping[str, str] | None = None,
                timestamp_format: str | None = None, timestamp_unit: str | None = None,
                split: str | None = None, errors: str = "raise",
                rejects_path: str | Path | None = None) -> tuple[pd.DataFrame, ReadReport]:
    """Read any tabular source into the event table; returns (events, report).

    ``timestamp_unit`` ("s", "ms") reads epoch numbers; otherwise ``timestamp_format`` or
    pandas' parser reads strings. Bad rows raise naming the row and field, or are set aside
    in lenient mode (counts in = accepted + rejected).
    """
    mode = check_errors_mode(errors)
    frame, name, first_line = _load_frame(source, split)
    column_map = dict(column_map or {})
    unknown = set(column_map) - set(EVENT_COLUMNS)
    if unknown:
        raise DataError(f"column_map names unknown schema columns {sorted(unknown)}; the schema "
                        f"is {list(EVENT_COLUMNS)}", source=name)
    renamed = {}
    for column in EVENT_COLUMNS:
        source_column = column_map.get(column, column)
        if source_column in frame.columns:
            renamed[column] = frame[source_column]
        elif column in REQUIRED_COLUMNS:
            raise DataError(f"source has no column {source_column!r} for {column!r}; columns "
                            f"are {list(frame.columns)}", source=name, field=column)
    table = pd.DataFrame(renamed)
    checker = RowChecker(name, table, np.arange(len(table)) + first_line,
                         raw_row=lambda i: ",".join(str(v) for v in frame.iloc[i].tolist()))
    fail = checker.fail

    fail(table["user_id"].isna() | table["user_id"].astype(str).str.strip().eq(""), "user_id",
         "empty value")
    if "app" in table:  # an empty app is allowed on a place-only row (see schema.py)
        table["app"] = table["app"].where(table["app"].astype(str).str.strip().ne(""), None)
    has_place = pd.Series(False, index=table.index)
    for column in ("location_id", "location_category", "latitude"):
        if column in table:
            has_place |= table[column].notna() & table[column].astype(str).str.strip().ne("")
    no_app = table["app"].isna() if "app" in table else pd.Series(True, index=table.index)
    fail((no_app & ~has_place).to_numpy(), "app" if "app" in table else "location_id",
         "event has neither an app nor a place")
    if timestamp_unit is not None:
        numbers = pd.to_numeric(table["timestamp"], errors="coerce")
        stamps = pd.to_datetime(numbers, unit=timestamp_unit, errors="coerce")
    else:
        stamps = pd.to_datetime(table["timestamp"], format=timestamp_format, errors="coerce")
    untimed = table["timestamp"].isna() | table["timestamp"].astype(str).str.strip().eq("")
    if not untimed.all():  # an all-empty column is an untimed table (see schema.py)
        fail(stamps.isna().to_numpy(), "timestamp", "not a valid timestamp")
    table["timestamp"] = stamps
    if "traffic_bytes" in table:
        traffic_text = table["traffic_bytes"].replace("", None)
        traffic = pd.to_numeric(traffic_text, errors="coerce")
        fail((traffic_text.notna() & traffic.isna()).to_numpy(), "traffic_bytes",
             "not a number")
        fail((traffic < 0).fillna(False).to_numpy(), "traffic_bytes", "must be >= 0")
        table["traffic_bytes"] = traffic.round()
    for column, limit in (("latitude", 90), ("longitude", 180)):
        if column in table:
            values = pd.to_numeric(table[column].replace("", None), errors="coerce")
            fail((values.abs() > limit).fillna(False).to_numpy(), column,
                 f"outside [-{limit}, {limit}]")
            table[column] = values
    if "app_category" not in table and "app" in table:
        mapping = app_categories or {}
        category = table["app"].astype(str).map(mapping).fillna(UNKNOWN_CATEGORY)
        table["app_category"] = category.where(table["app"].notna(), None)

    report = ReadReport(name)
    ok = checker.finish(mode, report)
    report.check_balanced()
    if rejects_path is not None:
        report.write_rejects(rejects_path)
    events = table.loc[ok].reset_index(drop=True)
    return validate_events(events, source=name), report
