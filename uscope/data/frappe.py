"""Reader for the Frappe context-aware app log in ``../shared/data/frappe`` (Baltrunas et al.).

``frappe.csv`` (tab-separated, header ``user item cnt daytime weekday isweekend homework cost
weather country city``): how often (``cnt``) a user used an app (``item``) in a context.
``meta.csv`` (tab-separated, one row per app): package, Play category, name and more.

One row becomes one event with ``uses`` = ``cnt`` (5.4 million uses are not expanded). The
app is named from ``meta.csv`` (``app_label``: the name, with the item id when two apps share
a name, ``item <id>`` when the name is "unknown"), its category is the Play category
(``Unknown`` for "unknown"). Frappe has **no timestamps**: contexts are buckets, so
``timestamp`` stays null on every row and the buckets go to ``context`` as
``daytime=...;weekday=...;isweekend=...;homework=...;weather=...;country=...;city=...``
(``uscope.data.schema.parse_context`` reads them back). No place is recorded; ``cost`` is an
attribute of the app and stays in ``FrappeData.apps``. Terms: research use, no redistribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from uscope.data.parsing import finish_read, read_table
from uscope.data.schema import UNKNOWN_CATEGORY, ReadReport, validate_events

FRAPPE_COLUMNS = ["user", "item", "cnt", "daytime", "weekday", "isweekend", "homework", "cost",
                  "weather", "country", "city"]
META_COLUMNS = ["item", "package", "category", "downloads", "developer", "icon", "language",
                "description", "name", "price", "rating", "short desc"]
CONTEXT_FIELDS = ("daytime", "weekday", "isweekend", "homework", "weather", "country", "city")
DAYTIMES = ("sunrise", "morning", "noon", "afternoon", "sunset", "evening", "night")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass
class FrappeData:
    events: pd.DataFrame
    report: ReadReport
    apps: pd.DataFrame  # meta.csv indexed by item id, plus the `app_label` used in events


def app_labels(meta: pd.DataFrame) -> pd.Series:
    """Unique, readable app names: the name; name [item] when shared; item <id> when unknown."""
    name = meta["name"].str.strip()
    unknown = name.eq("") | name.str.lower().eq("unknown")
    shared = name.duplicated(keep=False) & ~unknown
    label = name.where(~shared, name + " [" + meta["item"] + "]")
    return label.where(~unknown, "item " + meta["item"])


def read_meta(path: str | Path, errors: str = "raise") -> tuple[pd.DataFrame, ReadReport]:
    table, checker = read_table(path, META_COLUMNS, sep="\t")
    checker.nonempty("item")
    checker.integer("item", minimum=0)
    report = ReadReport(str(path))
    ok = finish_read(checker, errors, report, None)
    meta = table.loc[ok, META_COLUMNS].apply(lambda c: c.str.strip()).reset_index(drop=True)
    meta["app_label"] = app_labels(meta)
    category = meta["category"].where(meta["category"].str.lower().ne("unknown"),
                                      UNKNOWN_CATEGORY)
    meta["category"] = category.where(category.ne(""), UNKNOWN_CATEGORY)
    return meta.set_index("item"), report


def package_categories(meta_path: str | Path) -> dict[str, str]:
    """Android package -> Play category, from ``meta.csv`` (known categories only)."""
    apps, _ = read_meta(meta_path)
    known = apps[apps["category"].ne(UNKNOWN_CATEGORY) & apps["package"].ne("")]
    return dict(zip(known["package"], known["category"]))


def read_frappe(directory: str | Path, *, errors: str = "raise",
                rejects_path: str | Path | None = None) -> FrappeData:
    """Read ``frappe.csv`` with ``meta.csv`` of `directory` into an untimed app event table.

    A bad line (wrong field count, a count below 1, a daytime or weekday bucket outside
    Frappe's, an app id missing from ``meta.csv``) raises a ``DataError`` with file, line and
    field, or with ``errors='lenient'`` is set aside (``rejects_path``) and counted.
    """
    directory = Path(directory)
    apps, _ = read_meta(directory / "meta.csv", errors="raise")
    path = directory / "frappe.csv"
    table, checker = read_table(path, FRAPPE_COLUMNS, sep="\t")
    checker.nonempty("user", *CONTEXT_FIELDS)
    checker.integer("user", minimum=0)
    item = checker.member("item", apps.index, "app id (not in meta.csv)")
    cnt = checker.integer("cnt", minimum=1)
    checker.member("daytime", DAYTIMES, "daytime bucket")
    checker.member("weekday", WEEKDAYS, "weekday")
    report = ReadReport(str(path))
    ok = finish_read(checker, errors, report, rejects_path)

    kept = table.loc[ok]
    meta = apps.loc[item[ok].to_numpy()]
    context = pd.Series("", index=kept.index, dtype="object")
    for i, name in enumerate(CONTEXT_FIELDS):
        context = context + ("" if i == 0 else ";") + name + "=" + kept[name].str.strip()
    events = pd.DataFrame({
        "user_id": kept["user"].str.strip().to_numpy(),
        "timestamp": pd.NaT,
        "app": meta["app_label"].to_numpy(),
        "app_category": meta["category"].to_numpy(),
        "uses": cnt[ok],
        "context": context.to_numpy(),
    })
    return FrappeData(validate_events(events, source=str(path)), report, apps)

