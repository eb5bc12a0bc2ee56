"""Reader for the Foursquare NYC weekly trajectories in ``../shared/data/foursquare_nyc``.

Real check-ins (the TSMC2014 NYC collection) cut into user-weeks: ``specific_train.csv`` and
``specific_test.csv`` with the header ``tid,label,lat,lon,day,hour,poi,category,price,rating,
weather``. ``tid`` is one user-week, ``label`` the user, ``poi`` the venue, ``category`` one of
ten top-level Foursquare categories. The two files split each user's weeks; the reader joins
them (``split`` keeps which file a week came from).

Location only: every event is a check-in, so ``app`` stays null (no app is invented).
``location_id`` = venue, ``location_category`` = its category, coordinates from the row,
``context`` = ``weather=...``. Price and rating are venue attributes, not events, and are not
kept.

**How timestamps are formed.** The files hold no dates, only each week's order (``tid``
ascending within a user), the weekday name and the hour. A user's weeks are laid back to back
from ``anchor`` (a Monday; default 2012-04-02, the first week of the collection): week rank r
starts at anchor + r weeks, a check-in falls on its weekday (Monday = day 0) and hour, and
the n check-ins of one (week, day, hour) are spread evenly inside the hour in file order, at
(i + 0.5) / n of it. Gaps between weeks are unknown and therefore not represented; weekday,
hour and order within a week are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from uscope.data.parsing import finish_read, read_table
from uscope.data.schema import DataError, ReadReport, validate_events

FOURSQUARE_COLUMNS = ["tid", "label", "lat", "lon", "day", "hour", "poi", "category", "price",
                      "rating", "weather"]
FOURSQUARE_FILES = ("specific_train.csv", "specific_test.csv")
CATEGORIES = ("Arts & Entertainment", "College & University", "Event", "Food",
              "Nightlife Spot", "Outdoors & Recreation", "Professional & Other Places",
              "Residence", "Shop & Service", "Travel & Transport")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DEFAULT_ANCHOR = "2012-04-02"


@dataclass
class FoursquareData:
    events: pd.DataFrame
    report: ReadReport
    weeks: pd.DataFrame  # one row per user-week: user_id, tid, week (rank), start, split


def _read_file(path: Path, errors: str, report: ReadReport,
               rejects_path: str | Path | None) -> pd.DataFrame:
    table, checker = read_table(path, FOURSQUARE_COLUMNS)
    checker.nonempty("poi")
    tid = checker.integer("tid", minimum=0)
    label = checker.integer("label", minimum=0)
    lat = checker.number("lat", low=-90.0, high=90.0)
    lon = checker.number("lon", low=-180.0, high=180.0)
    day = checker.member("day", WEEKDAYS, "weekday name")
    hour = checker.integer("hour", minimum=0, maximum=23)
    category = checker.member("category", CATEGORIES, "Foursquare category")
    ok = finish_read(checker, errors, report, rejects_path)
    return pd.DataFrame({
        "tid": tid, "user_id": label.astype(str), "latitude": lat, "longitude": lon,
        "day": day.map(WEEKDAYS.index), "hour": hour,
        "location_id": table["poi"].str.strip(), "location_category": category,
        "weather": table["weather"].fillna("").str.strip(),
        "line": checker.lines, "source": str(path), "split": path.stem.split("_")[-1],
    })[ok]


def read_foursquare(directory: str | Path, *, anchor: str = DEFAULT_ANCHOR,
                    errors: str = "raise", rejects_path: str | Path | None = None
                    ) -> FoursquareData:
    """Read both weekly-trajectory files of `directory` into one location-only event table.

    A bad line (wrong field count, a coordinate out of range, an unknown weekday or category,
    a bad hour) raises a ``DataError`` with file, line and field, or with
    ``errors='lenient'`` is set aside (``rejects_path``) and counted. A week id (``tid``) that
    appears under two users is an unknown (inconsistent) id: it is rejected the same way.
    """
    directory = Path(directory)
    if pd.Timestamp(anchor).dayofweek != 0:
        raise ValueError(f"anchor must be a Monday, got {anchor} "
                         f"({pd.Timestamp(anchor).day_name()})")
    report = ReadReport(str(directory))
    frames = [_read_file(directory / name, errors, report, rejects_path)
              for name in FOURSQUARE_FILES]
    rows = pd.concat(frames, ignore_index=True)
    owners = rows.groupby("tid")["user_id"].transform("nunique")
    if (owners > 1).any():
        first_user = rows.groupby("tid")["user_id"].transform("first")
        clash = rows[(owners > 1) & (rows["user_id"] != first_user)]
        if errors == "raise":
            bad = clash.iloc[0]
            raise DataError(f"week tid={bad['tid']} already belongs to user "
                            f"{first_user[clash.index[0]]}, not {bad['user_id']}",
                            source=bad["source"], line=int(bad["line"]), field="tid")
        for _, bad in clash.iterrows():
            report.accepted -= 1
            report.reject(int(bad["line"]), "tid", "week id of another user",
                          f"tid={bad['tid']},label={bad['user_id']}", source=bad["source"])
        rows = rows.drop(index=clash.index)
        if rejects_path is not None:
            report.write_rejects(rejects_path)
    report.check_balanced()

    rows = rows.sort_values(["user_id", "tid", "day", "hour", "source", "line"], kind="stable")
    rows["week"] = rows.groupby("user_id")["tid"].rank(method="dense").astype(int) - 1
    group = rows.groupby(["user_id", "tid", "day", "hour"], sort=False)
    within, size = group.cumcount().to_numpy(), group["tid"].transform("size").to_numpy()
    offset_s = np.floor((within + 0.5) / size * 3600.0)
    start = pd.Timestamp(anchor)
    rows["timestamp"] = start + pd.to_timedelta(
        rows["week"].to_numpy() * 7 * 86400 + rows["day"].to_numpy() * 86400
        + rows["hour"].to_numpy() * 3600 + offset_s, unit="s")
    weeks = (rows.groupby(["user_id", "tid"], as_index=False)
             .agg(week=("week", "first"), split=("split", "first")))
    weeks["start"] = start + pd.to_timedelta(weeks["week"] * 7, unit="D")
    events = rows[["user_id", "timestamp", "location_id", "location_category", "latitude",
                   "longitude"]].assign(context="weather=" + rows["weather"])
    return FoursquareData(validate_events(events, source=str(directory)), report, weeks)
