"""Malformed input: every bad line is named (file, line, field) or set aside and counted."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import TSINGHUA

from uscope.data import DataError, read_events, read_netfp, read_tsinghua

GOOD = "0 20160420081319 1 361 1920"


def _tsinghua_dir(tmp_path, trace: str, *, encoding: str = "utf-8"):
    for name in ("App2Category.txt", "Categorys.txt", "base_poi.txt"):
        (tmp_path / name).symlink_to(TSINGHUA / name)
    (tmp_path / "App_Usage_Trace.txt").write_bytes(trace.encode(encoding))
    return tmp_path


@pytest.mark.parametrize(("bad_line", "field", "reason"), [
    ("0 20160420081319 1 361", "traffic_bytes", "truncated"),
    ("0 2016042008 1 361 5", "timestamp", "YYYYMMDDHHMMSS"),
    ("0 20161340081319 1 361 5", "timestamp", "YYYYMMDDHHMMSS"),  # month 13
    ("0 20160420081319 1 99999 5", "app_id", "unknown app"),
    ("0 20160420081319 99999 361 5", "base_station_id", "unknown base station"),
    ("x 20160420081319 1 361 5", "user_id", "integer"),
    ("0 20160420081319 1 361 -5", "traffic_bytes", ">= 0"),
    ("0 20160420081319 1 361 5 7", "traffic_bytes", "too many fields"),
    ("", "user_id", "empty line"),
])
def test_trace_bad_line_strict(shared_data, tmp_path, bad_line, field, reason):
    directory = _tsinghua_dir(tmp_path, f"{GOOD}\n{GOOD}\n{bad_line}\n{GOOD}\n")
    with pytest.raises(DataError) as info:
        read_tsinghua(directory)
    error = info.value
    assert error.line == 3 and error.field == field and reason in error.reason
    assert "App_Usage_Trace.txt" in str(error) and "line 3" in str(error)


def test_trace_lenient_counts_and_side_file(shared_data, tmp_path):
    lines = [GOOD, "0 2016 1 361 5", GOOD, "0 20160420081319 1 99999 5", "0 1"]
    directory = _tsinghua_dir(tmp_path, "\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.tsv"
    data = read_tsinghua(directory, errors="lenient", rejects_path=rejects)
    report = data.report
    assert (report.rows_in, report.accepted, report.rejected) == (5, 2, 3)
    assert len(data.events) == 2
    side = pd.read_csv(rejects, sep="\t")
    assert side["line"].tolist() == [2, 4, 5]
    assert side["field"].tolist() == ["timestamp", "app_id", "base_station_id"]
    assert side["raw"].tolist()[0] == "0 2016 1 361 5"


def test_trace_wrong_encoding(shared_data, tmp_path):
    directory = _tsinghua_dir(tmp_path, f"{GOOD}\n0 2016042008131é 1 361 5\n",
                              encoding="latin-1")
    with pytest.raises(DataError) as info:
        read_tsinghua(directory)
    assert info.value.line == 2 and "utf-8" in info.value.reason


def test_trace_empty_file_is_empty_table(shared_data, tmp_path):
    data = read_tsinghua(_tsinghua_dir(tmp_path, ""))
    assert data.events.empty and data.report.rows_in == 0


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="missing App_Usage_Trace.txt"):
        read_tsinghua(tmp_path)


NETFP_HEADER = "id,hour,app,app_cat,times\r\n"


@pytest.mark.parametrize(("row", "field"), [
    ("A1,24,微信,通讯聊天,3", "hour"),
    ("A1,5,微信,通讯聊天,0", "times"),
    ("A1,5,微信,通讯聊天", "times"),
    (",5,微信,通讯聊天,2", "id"),
    ("A1,five,微信,通讯聊天,2", "hour"),
])
def test_netfp_bad_rows(tmp_path, row, field):
    path = tmp_path / "data0117.csv"
    path.write_bytes((NETFP_HEADER + "A1,5,微信,通讯聊天,2\r\n" + row + "\r\n").encode("gb18030"))
    with pytest.raises(DataError) as info:
        read_netfp(path)
    assert (info.value.line, info.value.field) == (3, field)
    events, report = read_netfp(path, errors="lenient")
    assert (report.rows_in, report.accepted, report.rejected) == (2, 1, 1)
    assert len(events) == 2  # the good row had times=2


def test_netfp_header_and_empty(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        read_netfp(path)
    path.write_bytes("user,hour,app,app_cat,times\r\n".encode("gb18030"))
    with pytest.raises(DataError, match="header must be"):
        read_netfp(path)


def test_generic_csv_mapping_and_lenient(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("uid,ts,pkg,bytes\n"
                    "u1,2024-01-01 08:00:00,maps,10\n"
                    "u1,not a time,maps,10\n"
                    "u2,2024-01-01 09:30:00,,5\n"
                    "u2,2024-01-01 09:31:00,chat,-1\n"
                    "u2,2024-01-01 09:32:00,chat,\n")
    mapping = {"user_id": "uid", "timestamp": "ts", "app": "pkg", "traffic_bytes": "bytes"}
    with pytest.raises(DataError) as info:
        read_events(path, mapping, app_categories={"maps": "Navigation"})
    assert (info.value.line, info.value.field) == (3, "timestamp")
    events, report = read_events(path, mapping, app_categories={"maps": "Navigation"},
                                 errors="lenient")
    assert (report.rows_in, report.accepted, report.rejected) == (5, 2, 3)
    assert [r.field for r in report.rejections] == ["timestamp", "app", "traffic_bytes"]
    assert events["app_category"].tolist() == ["Navigation", "Unknown"]
    assert events["traffic_bytes"].isna().tolist() == [False, True]


def test_generic_missing_column_and_unknown_type(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user,when\nu1,2024-01-01\n")
    with pytest.raises(DataError, match="no column 'timestamp'"):
        read_events(path, {"user_id": "user"})
    with pytest.raises(DataError, match="unsupported file type"):
        read_events(tmp_path / "x.json" if (tmp_path / "x.json").write_text("{}") else None)
