"""Reader for the Tsinghua App Usage dataset format (Yu et al., IMWUT 2018).

Files of one dataset directory:
- ``App_Usage_Trace.txt``: ``user_id timestamp base_station_id app_id traffic_bytes``,
  space-separated, timestamp ``YYYYMMDDHHMMSS`` (local Shanghai time);
- ``App2Category.txt``: ``app_id<TAB>category_id``;
- ``Categorys.txt``: ``cat_id<TAB>'Name'`` with the published quirks (stray lines without a tab
  that list example apps, a typo, trailing spaces inside quotes, an escaped underscore);
- ``base_poi.txt``: tab-separated POI counts per base station, header ``BaseID<TAB>type...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from uscope.data.locations import LocationMap, fit_location_categories
from uscope.data.parsing import (
    RowChecker,
    check_errors_mode,
    read_text,
    split_fields,
    split_lines,
)
from uscope.data.schema import DataError, ReadReport, validate_events

TRACE_FILE = "App_Usage_Trace.txt"
APP2CAT_FILE = "App2Category.txt"
CATEGORIES_FILE = "Categorys.txt"
POI_FILE = "base_poi.txt"
TRACE_FIELDS = ["user_id", "timestamp", "base_station_id", "app_id", "traffic_bytes"]

# Typos in the published Categorys.txt, corrected on read (and listed in CategoryNames.fixes).
CATEGORY_TYPOS = {"Weath1er": "Weather"}


@dataclass
class CategoryNames:
    """App category ids -> cleaned names, plus what the cleaning did."""

    names: dict[int, str]
    examples: dict[int, list[str]] = field(default_factory=dict)  # stray example-app lines
    fixes: list[str] = field(default_factory=list)  # human-readable list of corrections


@dataclass
class TsinghuaData:
    """A dataset directory read back: events, id tables and the location categories."""

    events: pd.DataFrame
    report: ReadReport
    app_categories: dict[int, int]
    category_names: CategoryNames
    poi_counts: pd.DataFrame
    locations: LocationMap


def _unquote(raw: str) -> str:
    name = raw.strip()
    if len(name) >= 2 and name[0] == name[-1] == "'":
        name = name[1:-1]
    return name


def _clean_name(quoted: str) -> str:
    """Strip spaces inside the quotes, unescape ``\\_`` and correct known typos."""
    name = quoted.strip().replace("\\_", "_")
    return CATEGORY_TYPOS.get(name, name)


def read_category_names(path: str | Path) -> CategoryNames:
    """Read ``Categorys.txt``: ids 0..n with quoted names.

    A line without a tab is not a category: the published file has two such lines listing
    example apps of the category above them; they are kept in ``examples``, never dropped.
    """
    path = Path(path)
    lines, numbers = split_lines(read_text(path))
    result = CategoryNames(names={})
    previous: int | None = None
    for text, line in zip(lines, numbers):
        if not text.strip():
            continue
        if "\t" not in text:
            if previous is None:
                raise DataError("example line before any category", source=str(path),
                                line=int(line), field="cat_id")
            apps = [a.strip().strip("'?") for a in text.split(",")]
            result.examples.setdefault(previous, []).extend(a for a in apps if a)
            result.fixes.append(f"line {line}: example apps {text!r} attached to category "
                                f"{previous}")
            continue
        cat_text, raw_name = text.split("\t", 1)
        if not cat_text.strip().lstrip("-").isdigit():
            raise DataError(f"category id {cat_text!r} is not an integer", source=str(path),
                            line=int(line), field="cat_id")
        cat_id = int(cat_text)
        if cat_id in result.names:
            raise DataError(f"duplicate category id {cat_id}", source=str(path),
                            line=int(line), field="cat_id")
        quoted = _unquote(raw_name)
        name = _clean_name(quoted)
        if not name:
            raise DataError("empty category name", source=str(path), line=int(line),
                            field="name")
        if name != quoted:
            result.fixes.append(f"line {line}: {quoted!r} -> {name!r}")
        result.names[cat_id] = name
        previous = cat_id
    if not result.names:
        raise DataError("no categories found", source=str(path))
    return result


def read_app_categories(path: str | Path, errors: str = "raise") -> tuple[dict[int, int],
                                                                          ReadReport]:
    """Read ``App2Category.txt`` (``app_id<TAB>category_id``)."""
    mode = check_errors_mode(errors)
    path = Path(path)
    lines, numbers = split_lines(read_text(path))
    names = ["app_id", "category_id"]
    table = split_fields(lines, names, sep="\t")
    checker = RowChecker(str(path), table, numbers)
    checker.field_count(names)
    app_ids = checker.integer("app_id", minimum=0)
    cat_ids = checker.integer("category_id", minimum=0)
    report = ReadReport(str(path))
    ok = checker.finish(mode, report)
    mapping: dict[int, int] = {}
    for app_id, cat_id in zip(app_ids[ok], cat_ids[ok]):
        mapping[int(app_id)] = int(cat_id)
    return mapping, report


def read_base_poi(path: str | Path) -> pd.DataFrame:
    """Read ``base_poi.txt``: index = base station id, one integer column per POI type."""
    path = Path(path)
    lines, numbers = split_lines(read_text(path))
    if len(lines) == 0:
        raise DataError("empty file: expected a header line", source=str(path), line=1)
    header = [h.strip() for h in lines.iloc[0].split("\t")]
    if header[0] != "BaseID" or len(header) < 2:
        raise DataError(f"header must start with 'BaseID<TAB>', got {lines.iloc[0]!r}",
                        source=str(path), line=1, field="BaseID")
    table = split_fields(lines.iloc[1:].reset_index(drop=True), header, sep="\t")
    checker = RowChecker(str(path), table, numbers[1:])
    checker.field_count(header)
    columns = {name: checker.integer(name, minimum=0) for name in header}
    checker.finish("raise", ReadReport(str(path)))
    frame = pd.DataFrame(columns).set_index("BaseID")
    if frame.index.duplicated().any():
        dup = int(np.flatnonzero(frame.index.duplicated())[0])
        raise DataError(f"duplicate BaseID {frame.index[dup]}", source=str(path),
                        line=dup + 2, field="BaseID")
    return frame


def read_trace(path: str | Path, app_categories: dict[int, int],
               category_names: CategoryNames, base_stations: set[int] | None = None,
               errors: str = "raise") -> tuple[pd.DataFrame, ReadReport]:
    """Read ``App_Usage_Trace.txt`` into the event table (without location categories).

    Each line is checked: five fields, integer ids, a real ``YYYYMMDDHHMMSS`` time, an app id
    present in App2Category, a base station present in base_poi (when given), bytes >= 0.
    """
    mode = check_errors_mode(errors)
    path = Path(path)
    lines, numbers = split_lines(read_text(path))
    table = split_fields(lines, TRACE_FIELDS, sep=None)
    checker = RowChecker(str(path), table, numbers)
    checker.field_count(TRACE_FIELDS)
    users = checker.integer("user_id", minimum=0)
    stamp_text = table["timestamp"].fillna("").astype(str)
    stamps = pd.to_datetime(stamp_text.where(stamp_text.str.fullmatch(r"\d{14}"), None),
                            format="%Y%m%d%H%M%S", errors="coerce")
    checker.fail(stamps.isna().to_numpy(), "timestamp", "not a valid YYYYMMDDHHMMSS time")
    stations = checker.integer("base_station_id", minimum=0)
    if base_stations is not None:
        checker.fail(~np.isin(stations, list(base_stations)), "base_station_id",
                     "unknown base station (not in base_poi.txt)")
    apps = checker.integer("app_id", minimum=0)
    checker.fail(~np.isin(apps, list(app_categories)), "app_id",
                 "unknown app id (not in App2Category.txt)")
    traffic = checker.integer("traffic_bytes", minimum=0)
    report = ReadReport(str(path))
    ok = checker.finish(mode, report)
    category = np.array([category_names.names.get(app_categories.get(int(a), -1), "Unknown")
                         for a in apps[ok]], dtype=object)
    events = pd.DataFrame({
        "user_id": users[ok].astype(str),
        "timestamp": stamps[ok].to_numpy(),
        "app": apps[ok].astype(str),
        "app_category": category,
        "location_id": stations[ok].astype(str),
        "traffic_bytes": traffic[ok],
    })
    return validate_events(events, source=str(path)), report


def read_tsinghua(directory: str | Path, *, errors: str = "raise", n_location_categories: int = 10,
                  seed: int = 0, rejects_path: str | Path | None = None) -> TsinghuaData:
    """Read a whole Tsinghua-format directory and attach location categories to the events.

    ``errors='lenient'`` sets bad trace lines aside (written to ``rejects_path`` when given)
    and reports them; ``report.rows_in == report.accepted + report.rejected`` always holds.
    """
    directory = Path(directory)
    for name in (TRACE_FILE, APP2CAT_FILE, CATEGORIES_FILE, POI_FILE):
        if not (directory / name).exists():
            raise DataError(f"missing {name} in the Tsinghua directory", source=str(directory))
    names = read_category_names(directory / CATEGORIES_FILE)
    app_categories, _ = read_app_categories(directory / APP2CAT_FILE, errors="raise")
    poi = read_base_poi(directory / POI_FILE)
    events, report = read_trace(directory / TRACE_FILE, app_categories, names,
                                base_stations=set(poi.index.tolist()), errors=errors)
    report.check_balanced()
    if rejects_path is not None:
        report.write_rejects(rejects_path)
    # Categories come from every base station in base_poi, so they do not depend on which
    # users happen to be in the trace.
    locations = fit_location_categories(poi, n_categories=n_location_categories, seed=seed)
    events = locations.assign(events)
    return TsinghuaData(events, report, app_categories, names, poi, locations)
