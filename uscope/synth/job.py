"""Synthesis as a resumable job: one part file per finished user, merged at the end.

``run_synthesis_job`` writes each user's generated events to ``<out>.parts/`` (atomic rename),
so a job killed at any point and started again with ``resume=True`` skips the finished users
and produces every user exactly once. The merged file holds only ``synthetic=True`` rows
(``save_synthetic``); the per-user stats go to ``<out>.report.csv``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from uscope.data.schema import EVENT_COLUMNS, validate_events
from uscope.synth.generate import Decoder, SynthConfig, generate_user, plan_users
from uscope.synth.guard import load_synthetic, save_synthetic

STATS_PREFIX = "stat_"  # stats ride along in the part file's metadata columns


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def report_path(out: Path) -> Path:
    return out.with_name(out.stem + ".report.csv")


def _part_name(user: str) -> str:
    return hashlib.sha1(user.encode("utf-8")).hexdigest()[:20] + ".parquet"


@dataclass
class JobSummary:
    out: Path
    users: int
    skipped: int  # finished in an earlier run (resume)
    events: int
    report: pd.DataFrame

    def render(self) -> str:
        out_of_set = int(self.report["out_of_set"].sum()) if len(self.report) else 0
        exploratory = int(self.report["exploratory"].sum()) if len(self.report) else 0
        return (f"{self.events} synthetic events for {self.users} users "
                f"({self.skipped} resumed) -> {self.out}; {exploratory} users with exploratory "
                f"intent, {out_of_set} out-of-set events within budget")


def _write_part(directory: Path, user: str, events: pd.DataFrame, stats: dict) -> None:
    frame = events.copy()
    for key, value in stats.items():
        frame[STATS_PREFIX + key] = [value] * len(frame)
    if frame.empty:  # keep the stats of a user with no kept event
        frame = pd.DataFrame({STATS_PREFIX + k: [v] for k, v in stats.items()})
    target = directory / _part_name(user)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, target)


def _read_part(path: Path) -> tuple[pd.DataFrame, dict]:
    frame = pd.read_parquet(path)
    stat_columns = [c for c in frame.columns if c.startswith(STATS_PREFIX)]
    stats = {c[len(STATS_PREFIX):]: frame[c].iloc[0] for c in stat_columns}
    events = frame.drop(columns=stat_columns)
    events = events.dropna(subset=["user_id"]) if "user_id" in events else \
        pd.DataFrame(columns=list(EVENT_COLUMNS))
    return events, stats


def run_synthesis_job(events: pd.DataFrame, profiles: Any, decoder: Decoder, out: str | Path,
                      config: SynthConfig | None = None, users: Sequence[str] | None = None,
                      resume: bool = False, real_path: str | Path | None = None,
                      progress: Callable[[int, int], Callable[[int], Any]] | None = None
                      ) -> JobSummary:
    """Generate for every planned user into ``out`` (parquet); ``progress(done, total)`` returns
    a callback advanced by one per finished user."""
    config = config or SynthConfig()
    out = Path(out)
    if real_path is not None and out.resolve() == Path(real_path).resolve():
        raise ValueError(f"{out} is the real event file; synthetic events go to a separate file")
    directory = parts_dir(out)
    if resume and out.exists() and not directory.exists():  # finished earlier: nothing to do
        frame = load_synthetic(out)
        report = pd.read_csv(report_path(out)) if report_path(out).exists() else pd.DataFrame()
        return JobSummary(out, int(frame["user_id"].nunique()), int(frame["user_id"].nunique()),
                          len(frame), report)
    if directory.exists() and any(directory.iterdir()) and not resume:
        raise FileExistsError(f"{directory} holds an unfinished run; pass resume=True "
                              "(--resume) to continue it or delete it")
    if out.exists() and not resume:
        raise FileExistsError(f"{out} exists; choose another --out or delete it")
    directory.mkdir(parents=True, exist_ok=True)
    plans = plan_users(events, profiles, config, users)
    done = {p.name for p in directory.glob("*.parquet")}
    todo = [p for p in plans if _part_name(p.user_id) not in done]
    advance = progress(len(plans) - len(todo), len(plans)) if progress else None
    for plan in todo:
        outcome = generate_user(plan, decoder, config)
        _write_part(directory, plan.user_id, outcome.events, outcome.stats)
        if advance is not None:
            advance(1)
    frames, stats = [], []
    for plan in plans:
        part_events, part_stats = _read_part(directory / _part_name(plan.user_id))
        frames.append(part_events)
        stats.append(part_stats)
    merged = validate_events(pd.concat(frames, ignore_index=True), source=str(out)) if frames \
        else validate_events(pd.DataFrame(columns=list(EVENT_COLUMNS)))
    save_synthetic(merged, out, real_path)
    report = pd.DataFrame(stats)
    report.to_csv(report_path(out), index=False)
    shutil.rmtree(directory)
    return JobSummary(out, len(plans), len(plans) - len(todo), len(merged), report)
