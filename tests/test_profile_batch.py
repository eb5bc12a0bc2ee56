"""The batch job: sharded by stable hash, chunked, atomic, resumable after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uscope.data.schema import DataError, save_events, validate_events
from uscope.profile import (
    FeatureConfig,
    JobConfig,
    ProfileConfig,
    ProfileEncoder,
    ProfileSet,
    make_backend,
    parse_shard,
    run_profile_job,
    shard_of,
)
from uscope.profile.batch import merge_parts, parts_dir

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ["Social", "Games", "News", "Video", "Shopping", "Unknown"]
PLACES = ["Residence", "Office", "Campus", None]


def population(n_users: int, seed: int = 0) -> pd.DataFrame:
    """A hand-made event table: 2-12 events per user over three days."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for _ in range(int(rng.integers(2, 13))):
            cat = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
            rows.append((f"user{u:04d}",
                         pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=int(rng.integers(4320))),
                         f"{cat.lower()}_app", cat, PLACES[int(rng.integers(len(PLACES)))]))
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "app", "app_category",
                                        "location_category"])
    return validate_events(frame)


@pytest.fixture(scope="module")
def encoder(minilm):
    return ProfileEncoder(loaded=minilm)


@pytest.fixture(scope="module")
def heuristic():
    return make_backend("heuristic")


def test_shards_partition_users_stably():
    users = [f"user{i}" for i in range(500)]
    shards = [[u for u in users if shard_of(u, 4) == i] for i in range(4)]
    assert sorted(u for s in shards for u in s) == sorted(users)
    assert all(70 < len(s) < 180 for s in shards)  # a hash, not a split by position
    # The same shard in another interpreter with another hash seed.
    code = "from uscope.profile import shard_of; print([shard_of(f'user{i}', 4) for i in range(50)])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}, cwd=REPO)
    assert out.stdout.strip() == str([shard_of(f"user{i}", 4) for i in range(50)])
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_sharded_jobs_cover_the_population_exactly_once(tmp_path, heuristic, encoder):
    events = population(40)
    outs = []
    sizes = events.groupby("user_id").size()
    for i in range(3):
        budget = FeatureConfig(max_events=6)  # cut the longer histories
        config = JobConfig(profile=ProfileConfig(batch_size=4, features=budget), shard=(i, 3),
                           chunk_size=5)
        summary = run_profile_job(events, tmp_path / f"s{i}.parquet", heuristic, encoder, config)
        assert summary.n_profiled == summary.n_users and summary.n_failed == 0
        in_shard = [u for u in sizes.index if shard_of(u, 3) == i]
        assert summary.n_truncated == int((sizes[in_shard] > 6).sum()) > 0
        assert "budget 6 most recent events" in summary.render()
        assert not parts_dir(tmp_path / f"s{i}.parquet").exists()  # merged, parts removed
        outs.append(ProfileSet.load(tmp_path / f"s{i}.parquet"))
    ids = [u for o in outs for u in o.user_ids]
    assert sorted(ids) == sorted(events["user_id"].unique()) and len(ids) == len(set(ids))


def test_merge_puts_chunks_in_user_order_and_refuses_a_lost_or_doubled_user(tmp_path,
                                                                           heuristic, encoder):
    events = population(12)
    out = tmp_path / "all.parquet"
    run_profile_job(events, out, heuristic, encoder, JobConfig(chunk_size=5))
    whole = ProfileSet.load(out).frame
    users = list(whole["user_id"])

    def chunks(*row_sets) -> Path:
        parts = tmp_path / f"parts{len(list(tmp_path.iterdir()))}"
        parts.mkdir()
        for i, rows in enumerate(row_sets, start=1):
            ProfileSet(whole.iloc[rows].reset_index(drop=True)).save(
                parts / f"chunk-{i:06d}.parquet")
        return parts

    # a resumed run's chunks out of the shard's order: merged in that order all the same
    merge_parts(chunks([8, 3, 11], [0, 1, 2], [4, 5, 6, 7, 9, 10]), users, out)
    assert ProfileSet.load(out).frame.equals(whole)
    with pytest.raises(DataError, match="chunks hold 11 distinct users for 12 users"):
        merge_parts(chunks(range(6), range(6, 11)), users, out)
    with pytest.raises(DataError, match="chunks hold 12 distinct users for 12 users"):
        merge_parts(chunks(range(7), range(6, 12)), users, out)
    with pytest.raises(DataError, match="chunks hold 12 distinct users for 12 users"):
        merge_parts(chunks(range(12)), [*users[:-1], "someone else"], out)
    merge_parts(chunks(), [], out)  # a shard the hash left empty
    assert len(ProfileSet.load(out)) == 0


def test_rerun_needs_resume_and_the_same_settings(tmp_path, heuristic, encoder):
    events = population(12)
    out = tmp_path / "p.parquet"
    config = JobConfig(chunk_size=4)
    run_profile_job(events, out, heuristic, encoder, config)
    with pytest.raises(FileExistsError, match="--resume"):
        run_profile_job(events, out, heuristic, encoder, config)
    again = run_profile_job(events, out, heuristic, encoder, JobConfig(chunk_size=4, resume=True))
    assert again.n_profiled == 0 and again.n_skipped == 12  # finished: nothing redone
    # An interrupted job cannot be resumed with another prompt budget.
    parts = parts_dir(tmp_path / "q.parquet")
    parts.mkdir()
    run_dir_config = JobConfig(chunk_size=4, resume=True)
    (parts / "job.json").write_text('{"backend": "transformers"}')
    with pytest.raises(DataError, match="differs from the interrupted one"):
        run_profile_job(events, tmp_path / "q.parquet", heuristic, encoder, run_dir_config)
    with pytest.raises(DataError, match="no rows"):
        run_profile_job(events.iloc[0:0], tmp_path / "e.parquet", heuristic, encoder, config)


def test_stale_temp_files_from_a_killed_writer_are_ignored(tmp_path, heuristic, encoder):
    events = population(10)
    out = tmp_path / "p.parquet"
    parts = parts_dir(out)
    parts.mkdir()
    (parts / ".chunk-000001.parquet.4242.tmp").write_bytes(b"half a parquet file")
    (tmp_path / ".p.parquet.4242.tmp").write_bytes(b"half a merge")
    summary = run_profile_job(events, out, heuristic, encoder, JobConfig(resume=True))
    assert summary.n_profiled == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.parquet"]


def _cli(events: Path, out: Path, *extra: str) -> subprocess.Popen:
    code = "from uscope.cli import app; app()"
    args = [sys.executable, "-c", code, "profile", str(events), "--out", str(out),
            "--backend", "heuristic", "--batch-size", "3", "--chunk-size", "3", "--no-progress",
            "--threads", "1",
            *extra]
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})


def _kill_after_chunks(proc: subprocess.Popen, parts: Path, n_chunks: int) -> None:
    deadline = time.monotonic() + 120
    while len(list(parts.glob("chunk-*.parquet"))) < n_chunks:
        assert proc.poll() is None, f"finished before the kill: {proc.communicate()}"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _chunk_rows(parts: Path) -> pd.DataFrame:
    return pd.concat([ProfileSet.load(c).frame for c in sorted(parts.glob("chunk-*.parquet"))])


def test_sigkill_then_resume_profiles_every_user_exactly_once(tmp_path):
    events = population(90, seed=1)
    path = save_events(events, tmp_path / "events.parquet")
    out = tmp_path / "profiles.parquet"
    parts = parts_dir(out)

    _kill_after_chunks(_cli(path, out), parts, 2)
    assert not out.exists()
    first = _chunk_rows(parts).set_index("user_id")["created_at"]

    _kill_after_chunks(_cli(path, out, "--resume"), parts, len(first) // 3 + 3)
    second = _chunk_rows(parts).set_index("user_id")["created_at"]
    assert second.index.is_unique and (second.loc[first.index] == first).all()

    finish = _cli(path, out, "--resume")
    stdout, stderr = finish.communicate(timeout=180)
    assert finish.returncode == 0, stderr
    assert f"{len(second)} already done" in stdout and "failed: 0" in stdout
    result = ProfileSet.load(out)
    assert sorted(result.user_ids) == sorted(events["user_id"].unique())
    assert len(result.user_ids) == len(set(result.user_ids))
    final = result.frame.set_index("user_id")["created_at"]
    # Users finished before a kill kept their original profile: none was profiled again.
    assert (final.loc[second.index] == second).all()
    assert not parts.exists()


def test_cli_reports_bad_input_clearly(tmp_path):
    empty = save_events(population(3).iloc[0:0], tmp_path / "empty.parquet")
    proc = _cli(empty, tmp_path / "o.parquet")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "no events" in stderr
    proc = _cli(empty, tmp_path / "o.parquet", "--shard", "2/2")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "0 <= i < n" in stderr
    proc = _cli(empty, tmp_path / "o.parquet", "--kv-cache-gib", "2")  # heuristic: no KV cache
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--kv-cache-gib applies to the vllm backend" in stderr


class FlakyEndpoint:
    """The heuristic writer behind an endpoint that is down for some users on the first run."""

    def __init__(self, down_for: set[str]):
        self.inner, self.down_for = make_backend("heuristic"), set(down_for)
        self.name, self.model = self.inner.name, self.inner.model
        self.seen: list[str] = []

    def generate(self, requests):
        from uscope.profile.backends.base import Generation

        self.seen += [r.user_id for r in requests]
        texts = self.inner.generate(requests)
        return [Generation(None, "endpoint timed out") if r.user_id in self.down_for else t
                for r, t in zip(requests, texts)]


def test_retry_failed_profiles_only_the_failed_users_again(tmp_path, encoder):
    events = population(12)
    users = sorted(events["user_id"].unique())
    out = tmp_path / "p.parquet"
    config = JobConfig(chunk_size=5, profile=ProfileConfig(retries=0, backoff_s=0.0))
    first = run_profile_job(events, out, FlakyEndpoint(set(users[:3])), encoder, config)
    assert first.n_failed == 3 and set(first.failures) == set(users[:3])

    # --resume alone keeps the finished output; --retry-failed redoes exactly the failed users
    plain = run_profile_job(events, out, FlakyEndpoint(set()), encoder,
                            JobConfig(chunk_size=5, resume=True))
    assert plain.n_failed == 3 and plain.n_profiled == 0
    healed = FlakyEndpoint(set())
    retry = run_profile_job(events, out, healed, encoder,
                            JobConfig(chunk_size=5, resume=True, retry_failed=True,
                                      profile=ProfileConfig(retries=0, backoff_s=0.0)))
    assert sorted(healed.seen) == users[:3]
    assert retry.n_failed == 0 and retry.n_profiled == 3
    final = ProfileSet.load(out)
    assert sorted(final.user_ids) == users and final.frame["status"].eq("ok").all()
    assert not parts_dir(out).exists()
    with pytest.raises(ValueError, match="resume"):
        JobConfig(retry_failed=True)
