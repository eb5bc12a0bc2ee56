"""Reader for the hourly app-usage CSV in ``../shared/data/netfp`` (real data, one day).

Format: GB18030-encoded CSV, CRLF, header ``id,hour,app,app_cat,times``; ``times`` is how many
times the device used the app in that hour. Each row becomes ``times`` events spread evenly
inside the hour (at (i + 0.5) / times of the hour), so per-hour counts are preserved exactly.
The file has no location and no traffic: those columns stay null. Its day is not in the file
(only its name, ``data0117``): ``date`` sets it, 2017-01-17 by default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from uscope.data.netfp_names import APPS_EN, CATEGORIES_EN
from uscope.data.parsing import check_errors_mode, finish_read, read_table
from uscope.data.schema import ReadReport, validate_events

NETFP_COLUMNS = ["id", "hour", "app", "app_cat", "times"]
DEFAULT_DATE = "2017-01-17"


def read_netfp(path: str | Path, *, date: str = DEFAULT_DATE, encoding: str = "gb18030",
               language: str = "zh", errors: str = "raise",
               rejects_path: str | Path | None = None) -> tuple[pd.DataFrame, ReadReport]:
    """Read the netfp CSV into the event table; returns (events, report).

    ``language="en"`` replaces the Chinese app and category names with the English glosses of
    ``netfp_names`` (for the English text models); names without a gloss stay as they are and
    are listed in ``report.notes``.

    A bad line (wrong field count, hour outside 0..23, times < 1, empty id or app) raises a
    ``DataError`` naming the line and field, or with ``errors='lenient'`` is set aside, written
    to ``rejects_path`` when given, and counted in the report.
    """
    check_errors_mode(errors)
    path = Path(path)
    table, checker = read_table(path, NETFP_COLUMNS, encoding=encoding)
    checker.nonempty("id", "app", "app_cat")
    hours = checker.integer("hour", minimum=0, maximum=23)
    times = checker.integer("times", minimum=1)
    report = ReadReport(str(path))
    ok = finish_read(checker, errors, report, rejects_path)

    counts = times[ok]
    rows = np.repeat(np.arange(int(ok.sum())), counts)  # one event per use
    # position of each use inside its row: 0..times-1
    within = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    offset_s = (within + 0.5) / np.repeat(counts, counts) * 3600.0
    day = pd.Timestamp(date)
    stamps = day + pd.to_timedelta(hours[ok][rows] * 3600.0 + np.floor(offset_s), unit="s")
    if language not in ("zh", "en"):
        raise ValueError(f"language must be 'zh' or 'en', got {language!r}")
    kept = table.loc[ok]
    apps, categories = kept["app"].str.strip(), kept["app_cat"].str.strip()
    if language == "en":
        for column, glossary in ((apps, APPS_EN), (categories, CATEGORIES_EN)):
            missing = sorted(set(column) - set(glossary))
            report.notes += [f"no English name for {name!r}; kept as is" for name in missing]
        apps = apps.map(lambda name: APPS_EN.get(name, name))
        categories = categories.map(lambda name: CATEGORIES_EN.get(name, name))
    events = pd.DataFrame({
        "user_id": kept["id"].str.strip().to_numpy()[rows],
        "timestamp": stamps,
        "app": apps.to_numpy()[rows],
        "app_category": categories.to_numpy()[rows],
    })
    return validate_events(events, source=str(path)), report
