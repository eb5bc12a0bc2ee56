"""The readers of Foursquare NYC, StudentLife, Frappe and the Shanghai sample on the real files
in ../shared/data: exact counts, what each reader documents, and corrupted copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from uscope.data import DataError
from uscope.data.datasets import detect_format, load_dataset
from uscope.data.foursquare import CATEGORIES, read_foursquare
from uscope.data.frappe import read_frappe
from uscope.data.schema import has_times, parse_context
from uscope.data.shanghai import read_shanghai_sample
from uscope.data.studentlife import EXCLUDED_PACKAGES, foreground_uses, read_studentlife

FOURSQUARE = SHARED_DATA / "foursquare_nyc"
FRAPPE = SHARED_DATA / "frappe"
SHANGHAI = SHARED_DATA / "shanghai_sample"
STUDENTLIFE = SHARED_DATA / "studentlife"


@pytest.fixture(scope="module")
def foursquare(shared_data):
    return read_foursquare(FOURSQUARE)


@pytest.fixture(scope="module")
def studentlife(shared_data):
    return load_dataset("studentlife")


def test_foursquare_exact_counts(foursquare):
    events = foursquare.events
    assert foursquare.report.rows_in == foursquare.report.accepted == 26_695 + 13_466
    assert len(events) == 40_161
    assert events["user_id"].nunique() == 124
    assert events["location_id"].nunique() == 9_463
    assert events["app"].isna().all() and events["app_category"].isna().all()  # no invented app
    assert set(events["location_category"]) == set(CATEGORIES)
    assert (events["location_category"] == "Event").sum() == 23
    weeks = foursquare.weeks.groupby("user_id").size()
    assert weeks.min() == 10 and weeks.max() == 42 and weeks.median() == 14


def test_foursquare_timestamps_follow_week_order_day_and_hour(foursquare):
    events, weeks = foursquare.events, foursquare.weeks
    assert (events["timestamp"].dt.dayofweek.isin(range(7))).all()
    raw = pd.concat([pd.read_csv(FOURSQUARE / f) for f in ("specific_train.csv",
                                                             "specific_test.csv")])
    # weekday and hour are exact: the multiset of (user, weekday, hour) is the file's
    names = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    want = raw.assign(day=raw["day"].map(names.index)).groupby(
        [raw["label"].astype(str), "day", "hour"]).size().sort_index()
    got = events.groupby([events["user_id"].astype(str), events["timestamp"].dt.dayofweek,
                          events["timestamp"].dt.hour]).size().sort_index()
    assert got.tolist() == want.tolist()
    # week ranks follow tid order within each user; weeks lie back to back from the anchor
    for _, user_weeks in weeks.groupby("user_id"):
        ordered = user_weeks.sort_values("tid")
        assert ordered["week"].tolist() == list(range(len(ordered)))
    assert events["timestamp"].min() >= pd.Timestamp("2012-04-02")
    assert has_times(events)


def test_studentlife_users_and_join(studentlife):
    events = studentlife.events
    assert events["user_id"].nunique() == 33
    assert sorted(events.loc[events["app"].notna(), "user_id"].unique()) == ["u00", "u01"]
    apps = events[events["app"].notna()]
    assert not apps["app"].isin(EXCLUDED_PACKAGES).any()
    # about half the uses carry a Play category from Frappe's meta.csv, the rest "Unknown"
    assert 0.3 < (apps["app_category"] != "Unknown").mean() < 0.8
    # app events joined to a place nearest in time; GPS-only students have no app event
    assert apps["location_id"].notna().mean() > 0.5
    fixes = events[events["app"].isna()]
    assert fixes["location_id"].str.startswith("place_").all()
    assert fixes["latitude"].between(-90, 90).all()
    report = studentlife.report
    assert report.rows_in == report.accepted == 91_374 + 9_857 + 123_840


def test_studentlife_app_file_alone_has_its_two_students(shared_data):
    data = read_studentlife(STUDENTLIFE / "app.csv")
    assert data.app_users == ["u00", "u01"] and data.gps_only_users == []


def test_foreground_rule_counts_changes_not_snapshots():
    snapshots = pd.DataFrame({
        "user_id": ["a"] * 7,
        "seconds": [0, 0, 1200, 2400, 2400, 3600, 20000],
        # first row of each snapshot is its foreground task
        "package": ["mail", "launcher", "mail", "com.android.launcher", "mail", "maps", "maps"],
    })
    uses = foreground_uses(snapshots, gap_minutes=60)
    # mail (new), mail again (same, skipped), launcher (not a use), maps (new),
    # maps after a gap over an hour (new)
    assert uses["app"].tolist() == ["mail", "maps", "maps"]
    assert uses["seconds"].tolist() == [0, 3600, 20000]


def test_frappe_exact_counts_and_contexts(shared_data):
    data = read_frappe(FRAPPE)
    events = data.events
    assert data.report.rows_in == data.report.accepted == 64_431
    assert events["user_id"].nunique() == 630
    assert events["app"].nunique() == 3_153
    assert int(events["uses"].sum()) == int(pd.read_csv(FRAPPE / "frappe.csv", sep="\t")
                                            ["cnt"].sum())
    assert events["timestamp"].isna().all() and not has_times(events)  # no invented times
    contexts = parse_context(events["context"])
    assert set(contexts["daytime"]) == {"sunrise", "morning", "noon", "afternoon", "sunset",
                                        "evening", "night"}
    assert set(contexts["homework"]) == {"home", "work", "unknown"}
    assert events["location_id"].isna().all()


def test_shanghai_sample_exact_counts(shared_data):
    data = read_shanghai_sample(SHANGHAI)
    events = data.events
    assert len(events) == 3_293 and events["user_id"].nunique() == 6
    assert data.report.rows_in == data.report.accepted == 12_576 + 3_293
    assert events["location_category"].notna().all()
    assert events["latitude"].between(30, 32).all()  # Shanghai
    assert events["app_category"].isin(pd.read_csv(SHANGHAI / "category.csv")["en"]).all()
    assert events["timestamp"].dt.date.astype(str).eq("2016-04-20").all()


@pytest.mark.parametrize("path, fmt", [
    (FOURSQUARE, "foursquare-nyc"), (FRAPPE, "frappe"), (SHANGHAI, "shanghai-sample"),
    (STUDENTLIFE, "studentlife"), (STUDENTLIFE / "app.csv", "studentlife"),
    (SHARED_DATA / "netfp" / "data0117_dev.csv", "netfp"),
    (FOURSQUARE / "specific_test.csv", "foursquare-nyc"),
])
def test_formats_recognised_from_files(shared_data, path, fmt):
    assert detect_format(path) == fmt


# ------------------------------------------------------------ corrupted copies


def _copy(src: Path, dst: Path, keep_lines: dict[str, int] | None = None) -> Path:
    """Copy a dataset folder (the first `keep_lines[name]` lines of the named files)."""
    dst.mkdir(parents=True, exist_ok=True)
    keep_lines = keep_lines or {}
    for file in src.iterdir():
        if file.is_dir():
            continue
        if file.name in keep_lines:
            with file.open("rb") as handle:
                head = [next(handle) for _ in range(keep_lines[file.name])]
            (dst / file.name).write_bytes(b"".join(head))
        else:
            shutil.copy(file, dst / file.name)
    return dst


def _edit_line(path: Path, line: int, edit) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[line - 1] = edit(lines[line - 1])
    path.write_text("\n".join(lines), encoding="utf-8")


def _set_field(index: int, value: str, sep: str = ","):
    def edit(text: str) -> str:
        fields = text.split(sep)
        fields[index] = value
        return sep.join(fields)
    return edit


def _drop_last(sep: str = ","):
    return lambda text: sep.join(text.split(sep)[:-1])


CORRUPTIONS = {
    # reader: (source folder, kept lines, file, [(edit, field, reason fragment)])
    "foursquare-nyc": (FOURSQUARE, {"specific_train.csv": 400, "specific_test.csv": 200},
                       "specific_train.csv", [
                           (_drop_last(), "weather", "truncated"),
                           (_set_field(5, "25"), "hour", "<= 23"),
                           (_set_field(2, "95.1"), "lat", "outside"),
                           (_set_field(7, "Spaceport"), "category", "unknown"),
                       ]),
    "frappe": (FRAPPE, {"frappe.csv": 400}, "frappe.csv", [
        (_drop_last("\t"), "city", "truncated"),
        (_set_field(3, "midnight", "\t"), "daytime", "unknown daytime"),
        (_set_field(2, "0", "\t"), "cnt", ">= 1"),
        (_set_field(1, "99999", "\t"), "item", "unknown app id"),
    ]),
    "shanghai-sample": (SHANGHAI, {"data_sample.csv": 300}, "data_sample.csv", [
        (_drop_last(), "traffic_bin_2", "truncated"),
        (_set_field(1, "2016042008093"), "time", "not a valid time"),
        (_set_field(2, "999999"), "location", "unknown station"),
        (_set_field(3, "4242"), "app_id", "unknown app id"),
    ]),
    "shanghai-stations": (SHANGHAI, {"data_sample.csv": 300}, "location.csv", [
        (_set_field(2, "123.4"), "latitude", "outside"),
    ]),
    "studentlife": (STUDENTLIFE, {"app.csv": 600, "gps.csv": 300}, "app.csv", [
        (_drop_last(), "RUNNING_TASKS_numRunning", "truncated"),
        (_set_field(1, "13640958x3"), "timestamp", "not an integer"),
        (_set_field(0, ""), "userId", "empty value"),
    ]),
    "studentlife-gps": (STUDENTLIFE, {"app.csv": 600, "gps.csv": 300}, "gps.csv", [
        (_set_field(5, "91.5"), "latitude", "outside"),
    ]),
}
READERS = {"foursquare-nyc": read_foursquare, "frappe": read_frappe,
           "shanghai-sample": read_shanghai_sample, "shanghai-stations": read_shanghai_sample,
           "studentlife": lambda p, **kw: read_studentlife(p / "app.csv", **kw),
           "studentlife-gps": lambda p, **kw: read_studentlife(p / "app.csv", **kw)}
CASES = [(name, i) for name, spec in CORRUPTIONS.items() for i in range(len(spec[3]))]


@pytest.mark.parametrize("name, case", CASES)
def test_corrupted_copy_strict_names_file_line_field(shared_data, tmp_path, name, case):
    source, keep, file, edits = CORRUPTIONS[name]
    edit, field, reason = edits[case]
    folder = _copy(source, tmp_path / "data", keep)
    _edit_line(folder / file, 57, edit)
    with pytest.raises(DataError) as info:
        READERS[name](folder)
    error = info.value
    assert error.line == 57 and error.field == field, str(error)
    assert Path(error.source).name == file and reason in str(error)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupted_copy_lenient_counts_every_bad_line(shared_data, tmp_path, name):
    source, keep, file, edits = CORRUPTIONS[name]
    folder = _copy(source, tmp_path / "data", keep)
    bad_lines = [57 + 10 * i for i in range(len(edits))]
    for line, (edit, _, _) in zip(bad_lines, edits):
        _edit_line(folder / file, line, edit)
    rejects = tmp_path / "rejects.tsv"
    data = READERS[name](folder, errors="lenient", rejects_path=rejects)
    report = data.report
    assert report.rows_in == report.accepted + report.rejected
    mine = [r for r in report.rejections if Path(r.source).name == file]
    assert [r.line for r in mine][: len(bad_lines)] == bad_lines
    assert [r.field for r in mine][: len(edits)] == [e[1] for e in edits]
    side = pd.read_csv(rejects, sep="\t", keep_default_na=False)
    assert len(side) == report.rejected
    assert np.all(side["reason"].str.len() > 0)


def test_foursquare_week_of_two_users_is_rejected(shared_data, tmp_path):
    folder = _copy(FOURSQUARE, tmp_path / "fsq", {"specific_train.csv": 300,
                                                  "specific_test.csv": 100})
    _edit_line(folder / "specific_train.csv", 40, _set_field(1, "999"))  # user 999, tid of 6
    with pytest.raises(DataError, match="already belongs to user") as info:
        read_foursquare(folder)
    assert info.value.line == 40 and info.value.field == "tid"
    data = read_foursquare(folder, errors="lenient")
    assert data.report.rejected == 1 and "999" not in set(data.events["user_id"])


def test_unknown_format_folder_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="no known dataset in this folder"):
        detect_format(tmp_path)
