"""Line-accurate parsing helpers shared by the readers.

Every reader turns a file into a table of string fields, checks each field with vectorised
tests, and then either raises on the first bad line (strict) or sets the bad lines aside with
their reasons (lenient). Line numbers are 1-based and count every physical line of the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from uscope.data.schema import DataError, ReadReport

Errors = Literal["raise", "lenient"]


def check_errors_mode(errors: str) -> Errors:
    if errors not in ("raise", "lenient"):
        raise ValueError(f"errors must be 'raise' or 'lenient', got {errors!r}")
    return errors  # type: ignore[return-value]


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """Decode a whole file; a decoding error names the line and the expected encoding."""
    path = Path(path)
    if not path.exists():
        raise DataError("file does not exist", source=str(path))
    raw = path.read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"cannot decode byte {raw[exc.start]:#04x} as {encoding} (is the file in another "
            f"encoding?)", source=str(path), line=line,
        ) from None


def split_lines(text: str, *, skip_header: bool = False) -> tuple[pd.Series, np.ndarray]:
    """Physical lines (CR/LF stripped) and their 1-based numbers; the header line is dropped."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # newline after the last line
    numbers = np.arange(1, len(lines) + 1)
    series = pd.Series(lines, dtype="object").str.rstrip("\r")
    if skip_header:
        series, numbers = series.iloc[1:], numbers[1:]
    return series.reset_index(drop=True), numbers


def split_fields(lines: pd.Series, names: list[str], sep: str | None) -> pd.DataFrame:
    """Split lines into named string fields; `_n_fields` counts what each line really had."""
    parts = lines.str.split(sep) if sep is not None else lines.str.split()
    n_fields = parts.str.len().fillna(0).astype(int)
    n_fields = n_fields.where(lines.str.strip().ne(""), 0)
    table = pd.DataFrame(
        {name: parts.str[i] for i, name in enumerate(names)}, index=lines.index
    )
    table["_n_fields"] = n_fields.to_numpy()
    table["_raw"] = lines.to_numpy()
    return table


class RowChecker:
    """Collects the first failed check of every row, then raises or sets rows aside."""

    def __init__(self, source: str, table: pd.DataFrame, line_numbers: np.ndarray,
                 raw_row: Callable[[int], str] | None = None):
        self.source = source
        # the original text of row i, for messages and the rejects file
        self.raw_row = raw_row or (lambda i: str(table["_raw"].iloc[i]))
        self.table = table
        self.lines = line_numbers
        self.reason = np.full(len(table), None, dtype=object)
        self.field = np.full(len(table), None, dtype=object)

    @property
    def ok(self) -> np.ndarray:
        return np.array([r is None for r in self.reason], dtype=bool)

    def fail(self, bad: np.ndarray | pd.Series, field: str, reason: str) -> None:
        """Mark rows where `bad` holds (first failure per row wins)."""
        bad = np.asarray(bad, dtype=bool) & self.ok
        self.reason[bad] = reason
        self.field[bad] = field

    def field_count(self, names: list[str]) -> None:
        """Fail empty lines, truncated lines (naming the first missing field) and long lines."""
        expected = len(names)
        n = self.table["_n_fields"].to_numpy()
        self.fail(n == 0, names[0], "empty line")
        for k in range(1, expected):
            self.fail(n == k, names[k], f"truncated line: {k} of {expected} fields")
        self.fail(n > expected, names[-1], f"too many fields: expected {expected}")

    def integer(self, name: str, *, minimum: int | None = None,
                maximum: int | None = None) -> np.ndarray:
        """Parse a field as integers, failing rows that are not integers or out of range."""
        text = self.table[name].fillna("").astype(str).str.strip()
        values = pd.to_numeric(text.where(text.str.fullmatch(r"[+-]?\d+"), None), errors="coerce")
        self.fail(values.isna().to_numpy(), name, "not an integer")
        arr = values.fillna(0).to_numpy(dtype=np.int64)
        if minimum is not None:
            self.fail(arr < minimum, name, f"must be >= {minimum}")
        if maximum is not None:
            self.fail(arr > maximum, name, f"must be <= {maximum}")
        return arr

    def number(self, name: str, *, low: float | None = None,
               high: float | None = None) -> np.ndarray:
        """Parse a field as floats, failing rows that are not numbers or lie outside
        [low, high]."""
        values = pd.to_numeric(self.table[name].fillna("").str.strip(), errors="coerce")
        arr = values.to_numpy(dtype=np.float64)
        self.fail(np.isnan(arr), name, "not a number")
        finite = np.nan_to_num(arr)
        if low is not None:
            self.fail(finite < low, name, f"outside [{low}, {high}]")
        if high is not None:
            self.fail(finite > high, name, f"outside [{low}, {high}]")
        return arr

    def nonempty(self, *names: str) -> None:
        """Fail rows whose field is empty (or blank)."""
        for name in names:
            self.fail(self.table[name].fillna("").str.strip().eq("").to_numpy(), name,
                      "empty value")

    def member(self, name: str, allowed, what: str) -> pd.Series:
        """Fail rows whose (stripped) field is not among `allowed` ("unknown <what>")."""
        values = self.table[name].fillna("").str.strip()
        self.fail(~values.isin(list(allowed)).to_numpy(), name, f"unknown {what}")
        return values

    def timestamp(self, name: str, fmt: str, pattern: str) -> np.ndarray:
        """Parse a field as local times in `fmt`, failing rows that do not match `pattern`."""
        text = self.table[name].fillna("").astype(str).str.strip()
        stamps = pd.to_datetime(text.where(text.str.fullmatch(pattern), None), format=fmt,
                                errors="coerce")
        self.fail(stamps.isna().to_numpy(), name, f"not a valid time ({fmt})")
        return stamps.to_numpy()

    def finish(self, errors: Errors, report: ReadReport) -> np.ndarray:
        """Raise on the first bad row (strict) or record rejections (lenient); return ok mask."""
        ok = self.ok
        report.rows_in += len(ok)
        report.accepted += int(ok.sum())
        bad_rows = np.flatnonzero(~ok)
        if len(bad_rows) and errors == "raise":
            i = bad_rows[0]
            raise DataError(
                f"{self.reason[i]} (got {self.raw_row(i)!r}; use errors='lenient' to "
                f"set bad lines aside)", source=self.source, line=int(self.lines[i]),
                field=self.field[i],
            )
        for i in bad_rows:
            report.reject(int(self.lines[i]), str(self.field[i]), str(self.reason[i]),
                          self.raw_row(i), source=self.source)
        return ok


def read_table(path: str | Path, columns: list[str], *, sep: str = ",",
               encoding: str = "utf-8", extra_trailing_field: bool = False
               ) -> tuple[pd.DataFrame, RowChecker]:
    """A delimited file with a known header, as string fields and a checker with line numbers.

    The header must be exactly `columns`. ``extra_trailing_field``: data lines end with one more
    (empty) separator than the header, as published in some files; it is dropped when empty.
    The checker has already failed lines with the wrong number of fields.
    """
    path = Path(path)
    lines, numbers = split_lines(read_text(path, encoding=encoding))
    if len(lines) == 0:
        raise DataError("empty file: expected the header " + sep.join(columns),
                        source=str(path), line=1)
    header = [h.strip().lstrip("\ufeff") for h in lines.iloc[0].split(sep)]
    if header != columns:
        raise DataError(f"header must be {sep.join(columns)!r}, got {lines.iloc[0]!r}",
                        source=str(path), line=1, field="header")
    body = lines.iloc[1:].reset_index(drop=True)
    names = columns + ["_trailing"] if extra_trailing_field else columns
    table = split_fields(body, names, sep=sep)
    checker = RowChecker(str(path), table, numbers[1:])
    checker.field_count(names)
    if extra_trailing_field:
        checker.fail(table["_trailing"].fillna("").str.strip().ne("").to_numpy(), columns[-1],
                     f"too many fields: expected {len(columns)} and an empty last one")
    return table, checker


def finish_read(checker: RowChecker, errors: str, report: ReadReport,
                rejects_path: str | Path | None) -> np.ndarray:
    """Strict raise or lenient set-aside for one file; balanced counts; rejects side file."""
    ok = checker.finish(check_errors_mode(errors), report)
    report.check_balanced()
    if rejects_path is not None:
        report.write_rejects(rejects_path)
    return ok

