"""Reader for StudentLife app use and GPS in ``../shared/data/studentlife`` (Wang et al. 2014).

Files: ``app.csv`` (running-task snapshots of students 00 and 01), ``gps.csv`` (their GPS
fixes) and ``gps/gps_uXX.csv`` (GPS fixes of 31 more students, the user in the file name;
every data row ends with one extra empty field, as published). User ids are ``u00``, ``u01``,
``u03`` ... in every file. Times are Unix seconds, turned into local wall-clock time of the
study (Dartmouth College, ``America/New_York``) as the schema asks.

**Running tasks -> app-use events.** A snapshot (one ``timestamp``, about ten rows, every
~20 minutes) lists the running tasks most recent first, as Android's ``getRunningTasks``
returns them, so its first row is the task on top of the screen. The rule:

1. a snapshot's foreground package is its first row's ``topActivity`` package;
2. it is no app use when that package is on ``EXCLUDED_PACKAGES``: the home screen
   (launchers), the system UI and the study's own instruments (the StudentLife sensing app
   and the Paco survey app, which put themselves on top to sample and to ask);
3. an app-use event is written when the foreground package differs from the previous
   snapshot's, or the previous snapshot is more than ``gap_minutes`` (default 60) older.

Why: a task stays on top while the screen is off, so counting every snapshot would turn one
use into hours of uses; a change of the top task is the one thing a 20-minute sample shows
for certain (a use of that app began since the last snapshot). Uses shorter than the
interval between two snapshots are invisible, and no reader can recover them.

**GPS fixes -> places.** Every fix is a place event (no app). Fixes less accurate than
``max_accuracy_m`` are left out (counted in ``report.notes``). Fixes are grouped into places
by ``cluster_gps_places`` (DBSCAN, 150 m, coordinates rounded to 4 decimals for grouping).
StudentLife has no POI data, so places have no category. An app event takes the place and
coordinates of the same student's fix nearest in time when one lies within
``join_minutes`` (default 10): that is how app use and GPS of one person join in one table.

**App categories.** The files name packages only. ``app_categories`` (package -> category)
fills them; the registry passes the Play categories of Frappe's ``meta.csv`` when that folder
sits beside (``frappe.package_categories``: about half of the uses are mapped); other
packages are ``Unknown``, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from uscope.data.locations import cluster_gps_places
from uscope.data.parsing import finish_read, read_table
from uscope.data.schema import UNKNOWN_CATEGORY, ReadReport, validate_events

APP_COLUMNS = ["userId", "timestamp", "device", "RUNNING_TASKS_topActivity_mPackage",
               "RUNNING_TASKS_topActivity_mClass", "RUNNING_TASKS_baseActivity_mPackage",
               "RUNNING_TASKS_id", "RUNNING_TASKS_numActivities", "RUNNING_TASKS_numRunning"]
GPS_FIELDS = ["provider", "network_type", "accuracy", "latitude", "longitude", "altitude",
              "bearing", "speed", "travelstate"]
TIME_ZONE = "America/New_York"
# Not app use: home screens, system UI, and the study's instruments (see the module docstring).
EXCLUDED_PACKAGES = frozenset({
    "com.android.launcher", "com.google.android.launcher", "com.android.launcher2",
    "com.sec.android.app.launcher", "com.htc.launcher", "com.motorola.blur.home",
    "com.android.systemui", "android", "com.android.keyguard",
    "org.bewellapp", "com.google.android.apps.paco",
})


@dataclass
class StudentLifeData:
    events: pd.DataFrame
    report: ReadReport
    app_users: list[str]  # students with app data (and GPS)
    gps_only_users: list[str]  # students with GPS alone: cold-start users for apps


def _local_time(seconds: np.ndarray) -> np.ndarray:
    utc = pd.to_datetime(seconds, unit="s", utc=True)
    return utc.tz_convert(TIME_ZONE).tz_localize(None).to_numpy().astype("datetime64[ns]")


def _user(raw: pd.Series) -> pd.Series:
    return "u" + raw.fillna("").str.strip().str.zfill(2)


def foreground_uses(snapshots: pd.DataFrame, gap_minutes: float = 60.0) -> pd.DataFrame:
    """Steps 1-3 of the module docstring: one row per app use (user_id, seconds, app)."""
    first = snapshots.drop_duplicates(["user_id", "seconds"], keep="first")
    first = first.sort_values(["user_id", "seconds"], kind="stable")
    package = first["package"].where(~first["package"].isin(EXCLUDED_PACKAGES))
    same_user = first["user_id"].eq(first["user_id"].shift())
    recent = (first["seconds"] - first["seconds"].shift()) <= gap_minutes * 60
    repeat = same_user & recent & package.eq(package.shift()).fillna(False)
    keep = package.notna() & ~repeat
    return pd.DataFrame({"user_id": first["user_id"], "seconds": first["seconds"],
                         "app": package})[keep.to_numpy()]


def _read_apps(path: Path, errors: str, report: ReadReport,
               rejects_path: str | Path | None) -> pd.DataFrame:
    table, checker = read_table(path, APP_COLUMNS)
    checker.nonempty("userId", "RUNNING_TASKS_topActivity_mPackage")
    seconds = checker.integer("timestamp", minimum=0)
    ok = finish_read(checker, errors, report, rejects_path)
    return pd.DataFrame({
        "user_id": _user(table["userId"]), "seconds": seconds,
        "package": table["RUNNING_TASKS_topActivity_mPackage"].str.strip(),
    })[ok]


def _read_gps(path: Path, user: str | None, errors: str, report: ReadReport,
              rejects_path: str | Path | None) -> pd.DataFrame:
    columns = (["userId", "timestamp"] if user is None else ["time"]) + GPS_FIELDS
    table, checker = read_table(path, columns, extra_trailing_field=user is not None)
    seconds = checker.integer(columns[1] if user is None else "time", minimum=0)
    lat = checker.number("latitude", low=-90.0, high=90.0)
    lon = checker.number("longitude", low=-180.0, high=180.0)
    accuracy = checker.number("accuracy", low=0.0)
    ok = finish_read(checker, errors, report, rejects_path)
    users = _user(table["userId"]) if user is None else pd.Series(user, index=table.index)
    return pd.DataFrame({"user_id": users, "seconds": seconds, "latitude": lat,
                         "longitude": lon, "accuracy": accuracy})[ok]


def read_studentlife(path: str | Path, *, max_accuracy_m: float | None = 500.0,
                     gap_minutes: float = 60.0, join_minutes: float = 10.0,
                     app_categories: Mapping[str, str] | None = None, errors: str = "raise", rejects_path: str | Path | None = None
                     ) -> StudentLifeData:
    """Read the folder (app.csv, gps.csv and gps/*.csv) into one event table.

    `path` may also be ``app.csv`` alone (its students' apps with their ``gps.csv`` beside
    it). A bad line (wrong field count, a bad time, a coordinate out of range, an empty id or
    package) raises a ``DataError`` with file, line and field, or with ``errors='lenient'`` is
    set aside (``rejects_path``) and counted.
    """
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    report = ReadReport(str(directory))
    apps = _read_apps(directory / "app.csv", errors, report, rejects_path)
    fixes = [_read_gps(directory / "gps.csv", None, errors, report, rejects_path)]
    if path.is_dir():
        for file in sorted((directory / "gps").glob("gps_u*.csv")):
            user = file.stem.removeprefix("gps_")
            fixes.append(_read_gps(file, user, errors, report, rejects_path))
    report.check_balanced()
    gps = pd.concat(fixes, ignore_index=True)
    if max_accuracy_m is not None:
        coarse = gps["accuracy"] > max_accuracy_m
        report.notes.append(f"{int(coarse.sum())} of {len(gps)} GPS fixes less accurate than "
                            f"{max_accuracy_m:g} m left out")
        gps = gps[~coarse]
    uses = foreground_uses(apps, gap_minutes)
    report.notes.append(f"{len(uses)} app uses from "
                        f"{apps.drop_duplicates(['user_id', 'seconds']).shape[0]} snapshots")

    places = cluster_gps_places(validate_events(pd.DataFrame({
        "user_id": gps["user_id"], "timestamp": _local_time(gps["seconds"].to_numpy()),
        "latitude": gps["latitude"], "longitude": gps["longitude"], "location_id": "gps"})),
        round_decimals=4)
    app_events = pd.DataFrame({"user_id": pd.array(uses["user_id"], dtype="string"),
                               "timestamp": _local_time(uses["seconds"].to_numpy()),
                               "app": uses["app"].to_numpy(),
                               "app_category": uses["app"].map(dict(app_categories or {}))
                               .fillna(UNKNOWN_CATEGORY).to_numpy()})
    joined = pd.merge_asof(
        app_events.sort_values("timestamp"),
        places[["user_id", "timestamp", "location_id", "latitude", "longitude"]]
        .sort_values("timestamp"),
        on="timestamp", by="user_id", direction="nearest",
        tolerance=pd.Timedelta(minutes=join_minutes))
    events = validate_events(pd.concat([places, joined], ignore_index=True),
                             source=str(directory))
    app_users = sorted(uses["user_id"].unique().tolist())
    gps_only = sorted(set(places["user_id"]) - set(app_users))
    return StudentLifeData(events, report, app_users, gps_only)
