"""Reader for the Shanghai sample in ``../shared/data/shanghai_sample`` (6 users, one day).

Real rows of a Tsinghua-derived trace, in their own id space (the ids are NOT those of the
Tsinghua companion files):
- ``data_sample.csv``: ``user_id,time,location,app_id,app_cate_id,traffic,traffic_bin,
  traffic_bin_2``, time ``YYYYMMDDHHMMSS``; the two bins are derived from ``traffic`` and not
  kept;
- ``location.csv``: base stations ``base_id,base_key,latitude,longitude`` and 14 ``poi_<type>``
  counts;
- ``app.csv``: ``app_id,app_cate_id,app_cate_name``; ``category.csv``: ``app_type_id,en,cn``.

Apps have no names in the sample: ``app`` is ``app <id>``, its category the English name of
``category.csv``. Each event takes its station's coordinates; the stations' POI mixes are
clustered into named location categories (``fit_location_categories``, the paper's eq. 15
label), so places, categories and coordinates are all present.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from uscope.data.locations import LocationMap, fit_location_categories
from uscope.data.parsing import finish_read, read_table
from uscope.data.schema import DataError, ReadReport, validate_events

SAMPLE_COLUMNS = ["user_id", "time", "location", "app_id", "app_cate_id", "traffic",
                  "traffic_bin", "traffic_bin_2"]
LOCATION_HEAD = ["base_id", "base_key", "latitude", "longitude"]


@dataclass
class ShanghaiSample:
    events: pd.DataFrame
    report: ReadReport
    stations: pd.DataFrame  # index base_id: latitude, longitude, POI counts
    locations: LocationMap


def _poi_columns(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n").split(",")
    if header[:4] != LOCATION_HEAD or not all(c.startswith("poi_") for c in header[4:]):
        raise DataError(f"header must be {','.join(LOCATION_HEAD)},poi_<type>..., got "
                        f"{','.join(header)!r}", source=str(path), line=1, field="header")
    return header


def read_stations(path: str | Path, errors: str = "raise", report: ReadReport | None = None,
                  rejects_path: str | Path | None = None) -> pd.DataFrame:
    """``location.csv``: index base_id, latitude, longitude and one count column per POI type.

    Bad lines raise, or in lenient mode are set aside into `report` (then every trace row at
    that station is rejected as an unknown station).
    """
    path = Path(path)
    columns = _poi_columns(path)
    _, checker = read_table(path, columns)
    ids = checker.integer("base_id", minimum=0)
    lat = checker.number("latitude", low=-90.0, high=90.0)
    lon = checker.number("longitude", low=-180.0, high=180.0)
    counts = {c[4:]: checker.integer(c, minimum=0) for c in columns[4:]}
    checker.fail(pd.Series(ids).duplicated().to_numpy(), "base_id", "duplicate station id")
    ok = finish_read(checker, errors, report or ReadReport(str(path)), rejects_path)
    return pd.DataFrame({"latitude": lat, "longitude": lon, **counts},
                        index=pd.Index(ids.astype(str), name="base_id"))[ok]


def read_app_table(directory: Path) -> pd.DataFrame:
    """index app id: ``category_id`` and its English ``category``, from ``app.csv`` and
    ``category.csv``."""
    categories, cat_checker = read_table(directory / "category.csv", ["app_type_id", "en", "cn"])
    cat_ids = cat_checker.integer("app_type_id", minimum=0)
    finish_read(cat_checker, "raise", ReadReport(str(directory / "category.csv")), None)
    names = dict(zip(cat_ids.astype(str), categories["en"].str.strip()))
    apps, app_checker = read_table(directory / "app.csv",
                                   ["app_id", "app_cate_id", "app_cate_name"])
    app_ids = app_checker.integer("app_id", minimum=0)
    app_checker.member("app_cate_id", names, "category id (not in category.csv)")
    finish_read(app_checker, "raise", ReadReport(str(directory / "app.csv")), None)
    category_id = apps["app_cate_id"].str.strip().to_numpy()
    return pd.DataFrame({"category_id": category_id,
                         "category": pd.Series(category_id).map(names).to_numpy()},
                        index=app_ids.astype(str))


def read_shanghai_sample(directory: str | Path, *, n_location_categories: int = 10,
                         errors: str = "raise", rejects_path: str | Path | None = None
                         ) -> ShanghaiSample:
    """Read the sample folder into one event table (apps, places, coordinates, traffic).

    A bad line of ``data_sample.csv`` (wrong field count, a bad time, a station or app id not
    in ``location.csv`` / ``app.csv``, an app category that contradicts ``app.csv``, negative
    traffic) raises a ``DataError`` with file, line and field, or with ``errors='lenient'`` is
    set aside (``rejects_path``) and counted. The report covers ``location.csv`` and
    ``data_sample.csv`` (rows in = 12,576 stations + 3,293 trace rows on the real folder).
    """
    directory = Path(directory)
    report = ReadReport(str(directory))
    stations = read_stations(directory / "location.csv", errors, report, rejects_path)
    apps = read_app_table(directory)
    path = directory / "data_sample.csv"
    table, checker = read_table(path, SAMPLE_COLUMNS)
    checker.nonempty("user_id")
    stamps = checker.timestamp("time", "%Y%m%d%H%M%S", r"\d{14}")
    station = checker.member("location", stations.index, "station id (not in "
                                                                "location.csv)")
    app = checker.member("app_id", apps.index, "app id (not in app.csv)")
    stated = checker.table["app_cate_id"].fillna("").str.strip()
    checker.fail((stated != app.map(apps["category_id"])).to_numpy(), "app_cate_id",
                 "contradicts app.csv")
    traffic = checker.integer("traffic", minimum=0)
    ok = finish_read(checker, errors, report, rejects_path)

    poi = stations.drop(columns=["latitude", "longitude"])
    locations = fit_location_categories(poi, n_categories=n_location_categories, seed=0)
    places = station[ok].to_numpy()
    events = pd.DataFrame({
        "user_id": table.loc[ok, "user_id"].str.strip().to_numpy(),
        "timestamp": stamps[ok],
        "app": "app " + app[ok].to_numpy().astype(object),
        "app_category": apps.loc[app[ok], "category"].to_numpy(),
        "location_id": places,
        "location_category": [locations.categories[p] for p in places],
        "traffic_bytes": traffic[ok],
        "latitude": stations.loc[places, "latitude"].to_numpy(),
        "longitude": stations.loc[places, "longitude"].to_numpy(),
    })
    return ShanghaiSample(validate_events(events, source=str(path)), report,
                          stations, locations)

