"""The batch job reads a parquet event table in blocks of whole users: same rows as the job on
the table in memory, whatever the block size; an unsorted file stops with its row and field."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_profile_batch import population
from uscope.data.schema import DataError, save_events
from uscope.profile import JobConfig, ProfileEncoder, ProfileSet, make_backend, run_profile_job
from uscope.profile.stream import ParquetSource

pytestmark = pytest.mark.usefixtures("torch_one_thread")
SAME = ["user_id", "status", "prompt", "profile", "n_events", "n_used", "truncated"]


@pytest.fixture(scope="module")
def encoder(minilm):
    return ProfileEncoder(loaded=minilm)


@pytest.mark.parametrize("block_rows", [5, 64, 100_000])
def test_streamed_job_writes_the_rows_of_the_in_memory_job(tmp_path, encoder, block_rows):
    events = population(40, seed=4)
    path = save_events(events, tmp_path / "events.parquet")
    config = JobConfig(chunk_size=7)
    heuristic = make_backend("heuristic")
    run_profile_job(events, tmp_path / "memory.parquet", heuristic, encoder, config)
    summary = run_profile_job(ParquetSource(path, block_rows=block_rows),
                              tmp_path / "streamed.parquet", heuristic, encoder, config)
    assert summary.n_users == summary.n_profiled == 40 and summary.n_failed == 0
    memory = ProfileSet.load(tmp_path / "memory.parquet").frame
    streamed = ProfileSet.load(tmp_path / "streamed.parquet").frame
    pd.testing.assert_frame_equal(memory[SAME], streamed[SAME])
    assert all((a == b).all() for a, b in zip(memory["embedding"], streamed["embedding"]))


def test_users_come_in_file_order_and_blocks_keep_users_whole(tmp_path):
    events = population(12, seed=5)
    path = save_events(events, tmp_path / "events.parquet")
    source = ParquetSource(path, block_rows=3)
    assert source.users() == sorted(events["user_id"].unique())
    seen = []
    for block in source.blocks(source.users()[::2]):
        for uid in block.users:
            rows = block.events.iloc[block.slices[uid]]
            assert len(rows) == (events["user_id"] == uid).sum()
            seen.append(uid)
    assert seen == source.users()[::2]


def test_unsorted_file_names_the_row_and_field(tmp_path):
    events = population(6, seed=6)
    first = events["user_id"] == "user0000"
    table = pa.Table.from_pandas(pd.concat([events[~first], events[first]]),
                                 preserve_index=False)  # user0000 last
    path = tmp_path / "shuffled.parquet"
    pq.write_table(table, path)
    with pytest.raises(DataError, match="not sorted by user_id") as caught:
        run_profile_job(path, tmp_path / "out.parquet", make_backend("heuristic"),
                        ProfileEncoder.__new__(ProfileEncoder))
    assert caught.value.source == str(path) and caught.value.field == "user_id"
    assert caught.value.line == int((~first).sum())  # 0-based row of its first event


def test_cli_reads_an_unsorted_file_whole_and_says_so(tmp_path):
    from typer.testing import CliRunner

    from uscope.cli import app

    events = population(5, seed=7)
    shuffled = tmp_path / "shuffled.parquet"
    pq.write_table(pa.Table.from_pandas(events.iloc[::-1], preserve_index=False), shuffled)
    out = tmp_path / "profiles.parquet"
    result = CliRunner().invoke(app, ["profile", str(shuffled), "--out", str(out),
                                      "--backend", "heuristic", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "is not sorted by user_id, so it is read whole" in result.output
    assert sorted(ProfileSet.load(out).user_ids) == sorted(events["user_id"].unique())


def test_saved_events_come_in_bounded_row_groups(tmp_path):
    from uscope.data.schema import ROW_GROUP_ROWS

    n = ROW_GROUP_ROWS * 2 + 5
    table = pd.DataFrame({"user_id": [f"u{i // 1000:05d}" for i in range(n)],
                          "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(
                              range(n), unit="s"),
                          "app": "Mail", "app_category": "Tools"})
    meta = pq.ParquetFile(save_events(table, tmp_path / "big.parquet")).metadata
    assert meta.num_rows == n and meta.num_row_groups == 3
    assert max(meta.row_group(i).num_rows for i in range(3)) == ROW_GROUP_ROWS
