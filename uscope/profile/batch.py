"""Batched, sharded, chunked, atomic and resumable profiling of a whole population.

Layout for ``--out profiles.parquet``: finished chunks go to ``profiles.parquet.parts/``
(``chunk-000001.parquet`` ..., each written to a temp file and renamed, so a chunk is either
complete or absent) with ``job.json`` describing the job. When every user of the shard is in a
chunk, the chunks are merged into ``profiles.parquet`` (atomically) and the parts folder is
removed. Killed at any point (SIGKILL included), a rerun with ``resume=True`` reads the chunks,
skips their users and profiles only the rest: every user ends up exactly once, and no finished
user is profiled again. With ``retry_failed=True`` as well, users whose profile failed (status
"failed", e.g. an endpoint that timed out) are profiled again and their rows replaced. ``shard=(i, n)`` keeps the users whose stable hash is i mod n, so n
processes or nodes split a population without coordination.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from uscope.data.schema import DataError
from uscope.profile.backends import Backend, ProfileRequest
from uscope.profile.encoder import ProfileEncoder
from uscope.profile.pipeline import ProfileConfig, build_requests, profile_chunk
from uscope.profile.profileset import STATUS_FAILED, ProfileSet
from uscope.profile.prompting import load_template
from uscope.profile.stream import event_source, release_freed_memory


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0 <= i < n) -> (i, n)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from exc
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return index, count


def shard_of(user_id: str, n_shards: int) -> int:
    """Stable shard of a user: blake2b of its id mod n (same on every machine and run)."""
    digest = hashlib.blake2b(str(user_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def shard_users(user_ids: Sequence[str], shard: tuple[int, int]) -> list[str]:
    index, count = shard
    return [u for u in user_ids if shard_of(u, count) == index]


@dataclass(frozen=True)
class JobConfig:
    """One batch job: what to profile and how to persist it."""

    profile: ProfileConfig = field(default_factory=ProfileConfig)
    shard: tuple[int, int] = (0, 1)
    chunk_size: int = 256  # users per chunk file (the unit of work lost to a kill)
    resume: bool = False
    retry_failed: bool = False  # with resume: profile the failed users of the earlier run again

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.retry_failed and not self.resume:
            raise ValueError("retry_failed continues an earlier run: it needs resume=True")


@dataclass
class JobSummary:
    """What a run did; ``failures`` maps user id -> reason."""

    out: Path
    n_users: int  # users of this shard
    n_skipped: int  # finished by an earlier run
    n_profiled: int  # profiled by this run
    n_failed: int  # failed users in the final output
    n_truncated: int
    budget: int
    seconds: float
    failures: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        rate = self.n_profiled / self.seconds if self.seconds > 0 else 0.0
        lines = [
            (f"{self.out}: {self.n_users} users in shard; {self.n_profiled} profiled now, "
             f"{self.n_skipped} already done ({rate:.2f} users/s)"),
            (f"failed: {self.n_failed}; truncated histories: {self.n_truncated} "
             f"(budget {self.budget} most recent events per user)"),
        ]
        lines += [f"  failed {uid}: {reason}" for uid, reason in list(self.failures.items())[:20]]
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more (see the error column)")
        return "\n".join(lines)


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def job_record(config: JobConfig, users: Sequence[str], *, backend: str, model: str | None,
               encoder: str, **extra: Any) -> dict[str, Any]:
    """What ``job.json`` records of a job, so that a resumed run must be the same job."""
    return {
        "backend": backend, "model": model, "encoder": encoder,
        "template_version": load_template(config.profile.template).version,
        "features": asdict(config.profile.features), "shard": list(config.shard),
        "n_users": len(users),
        "users_digest": hashlib.sha256("\n".join(users).encode("utf-8")).hexdigest(),
        **extra,
    }


def _write_json_atomic(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _check_job(parts: Path, record: dict[str, Any]) -> None:
    """Create ``job.json``, or check that the resumed job is the same job."""
    path = parts / "job.json"
    if not path.exists():
        _write_json_atomic(path, record)
        return
    previous = json.loads(path.read_text())
    changed = sorted(k for k in record if previous.get(k) != record[k])
    if changed:
        raise DataError(f"cannot resume: this run differs from the interrupted one in {changed} "
                        f"(delete {parts} to start over)", source=str(path), field=changed[0])


def _clean_temp_files(folder: Path, prefix: str) -> None:
    for stale in folder.glob(f"{prefix}*.tmp"):  # left by a killed writer
        stale.unlink(missing_ok=True)


def _chunk_files(parts: Path) -> list[Path]:
    return sorted(parts.glob("chunk-*.parquet"))


def _chunk_ids(chunk: Path) -> pa.Array:
    """A chunk's user ids as one Arrow string array (a few bytes a user, no Python objects)."""
    return pq.read_table(chunk, columns=["user_id"]).column("user_id").combine_chunks() \
        .cast(pa.large_string())


def _chunk_users(chunk: Path) -> list[str]:
    return _chunk_ids(chunk).to_pylist()


def _finished_users(parts: Path) -> set[str]:
    done: set[str] = set()
    for chunk in _chunk_files(parts):
        ids = _chunk_users(chunk)
        twice = done.intersection(ids)
        if twice:
            raise DataError(f"user {min(twice)!r} is in more than one chunk (did two runs "
                            "share this --out?)", source=str(chunk), field="user_id")
        done.update(ids)
    return done


def _drop_failed_rows(parts: Path) -> int:
    """Rewrite (atomically) every chunk holding failed users without them; returns how many."""
    dropped = 0
    for chunk in _chunk_files(parts):
        rows = ProfileSet.load(chunk)
        failed = rows.frame["status"] == STATUS_FAILED
        if failed.any():
            ProfileSet(rows.frame[~failed].reset_index(drop=True)).save(chunk)
            dropped += int(failed.sum())
    return dropped


def _reopen_finished(out: Path, parts: Path) -> None:
    """Turn a finished output back into one chunk so that its failed users can be retried.

    Idempotent under a kill: the chunk is rebuilt from ``out`` until ``out`` is removed last."""
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir()
    ProfileSet.load(out).save(parts / "chunk-000001.parquet")
    out.unlink()


def merge_parts(parts: Path, users: Sequence[str], out: Path) -> None:
    """Write the chunks as one file in the shard's user order: streamed a chunk at a time when
    the chunks already follow that order (one run, or a resumed one), else sorted in memory."""
    chunks = sorted(((_chunk_ids(c), c) for c in _chunk_files(parts)),
                    key=lambda item: item[0][0].as_py() if len(item[0]) else "")
    # Arrow arrays, not Python strings: this check must not grow the job's memory by the
    # population's size at its very end
    ids = pa.concat_arrays([chunk_ids for chunk_ids, _ in chunks]) if chunks \
        else pa.array([], pa.large_string())
    wanted = pa.array(users, pa.large_string())
    distinct = pc.count_distinct(ids).as_py()
    if (distinct != len(ids) or len(ids) != len(wanted)
            or not pc.all(pc.is_in(ids, value_set=wanted), min_count=0).as_py()):
        raise DataError(f"chunks hold {distinct} distinct users for {len(users)} users of "
                        "the shard", source=str(parts), field="user_id")
    if ids.equals(wanted):
        ProfileSet.write_concatenated([c for _, c in chunks], out)
    else:
        merged = ProfileSet.concat(ProfileSet.load(c) for _, c in chunks)
        order = {u: i for i, u in enumerate(users)}
        frame = merged.frame.sort_values("user_id", key=lambda s: s.map(order), kind="stable")
        ProfileSet(frame).save(out)
    shutil.rmtree(parts)


def job_summary(out: Path, n_users: int, n_skipped: int, n_profiled: int,
             config: JobConfig, started: float) -> JobSummary:
    rows = pq.read_table(out, columns=["user_id", "status", "error", "truncated"])
    failed = rows.filter(pc.equal(rows["status"], STATUS_FAILED))  # Python objects for these only
    return JobSummary(
        out=out, n_users=n_users, n_skipped=n_skipped, n_profiled=n_profiled,
        n_failed=failed.num_rows, n_truncated=int(pc.sum(rows["truncated"]).as_py() or 0),
        budget=config.profile.features.max_events, seconds=time.perf_counter() - started,
        failures=dict(zip(failed["user_id"].to_pylist(), failed["error"].to_pylist())),
    )


def open_job(out: Path, users: Sequence[str], config: JobConfig, record: dict[str, Any]
             ) -> set[str] | None:
    """Make ``out``'s parts folder ready for this job; returns the users already done, or None
    when ``out`` is already complete (nothing to do)."""
    parts = parts_dir(out)
    if not config.resume and (out.exists() or parts.exists()):
        raise FileExistsError(f"{out if out.exists() else parts} exists; pass --resume to "
                              "continue that job, or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_temp_files(out.parent, prefix=f".{out.name}.")
    if out.exists():  # written only once every chunk was done: an earlier run finished the job
        if sorted(_chunk_users(out)) != sorted(users):
            raise DataError(f"{out} holds other users than this shard; choose another --out",
                            source=str(out), field="user_id")
        n_failed = int((pq.read_table(out, columns=["status"]).column("status").to_pandas()
                        == STATUS_FAILED).sum())
        if not (config.retry_failed and n_failed):
            shutil.rmtree(parts, ignore_errors=True)  # a kill may have interrupted the cleanup
            return None
        _reopen_finished(out, parts)
    parts.mkdir(exist_ok=True)
    _clean_temp_files(parts, prefix=".")
    _check_job(parts, record)
    if config.retry_failed:
        _drop_failed_rows(parts)
    return _finished_users(parts)


def run_profile_job(events: pd.DataFrame | str | os.PathLike, out: str | os.PathLike,
                    backend: Backend, encoder: ProfileEncoder, config: JobConfig | None = None,
                    progress: Callable[[int, int], Any] | None = None) -> JobSummary:
    """Profile this shard's users of ``events`` into ``out``; see the module docstring.

    ``events``: a table in memory, or a user-sorted parquet file read in blocks of users
    (``uscope.profile.stream``), so memory does not grow with the population.
    ``progress(n_done_before, n_total)`` is called once and returns a callback taking the
    number of users just finished (e.g. ``tqdm(...).update``).
    """
    config = config or JobConfig()
    started = time.perf_counter()
    out = Path(out)
    parts = parts_dir(out)
    source = event_source(events)
    all_users = source.users()
    if not all_users:
        raise DataError("the event table has no rows: no user to profile", source=source.name,
                        field="user_id")
    users = shard_users(all_users, config.shard)
    done = open_job(out, users, config, job_record(config, users, backend=backend.name,
                                               model=backend.model, encoder=encoder.label))
    if done is None:
        return job_summary(out, len(users), len(users), 0, config, started)
    todo = [u for u in users if u not in done]
    update = progress(len(users) - len(todo), len(users)) if progress else None
    template = load_template(config.profile.template)
    next_id = len(_chunk_files(parts)) + 1

    def write_chunk(requests: list[ProfileRequest]) -> None:
        nonlocal next_id
        chunk = profile_chunk(requests, backend, encoder, template, config.profile, update)
        while (parts / f"chunk-{next_id:06d}.parquet").exists():
            next_id += 1
        chunk.save(parts / f"chunk-{next_id:06d}.parquet")  # atomic: temp file + rename
        next_id += 1
        del chunk
        release_freed_memory()

    pending: list[ProfileRequest] = []  # built, not yet profiled (less than a chunk)
    size = config.chunk_size
    for block in source.blocks(todo):
        for start in range(0, len(block.users), size):
            pending += build_requests(block.events, block.users[start:start + size], template,
                                      config.profile.features, block.slices)
            while len(pending) >= size:
                write_chunk(pending[:size])
                pending = pending[size:]
    if pending:
        write_chunk(pending)
    merge_parts(parts, users, out)
    return job_summary(out, len(users), len(users) - len(todo), len(todo), config, started)
