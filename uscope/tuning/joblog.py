"""An append-only log of finished work items, so a killed data-building job resumes.

Each finished item is one JSON line ``{"key": ..., ...}``, appended and fsync'ed per batch.
On resume the log is read back; a last line cut short by a kill is ignored (its item is done
again), and the job skips every key already logged. The final dataset is written from the
log, so an item is in it exactly once however often the job was interrupted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class JobLog:
    """Finished items of one job, keyed by ``record["key"]``."""

    def __init__(self, path: str | os.PathLike, *, resume: bool):
        self.path = Path(path)
        if self.path.exists() and not resume:
            raise FileExistsError(f"{self.path} exists: pass resume to continue that run, or "
                                  f"choose a new output folder")
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break  # cut short by a kill: that item is done again
                raise ValueError(f"{self.path} line {number} is not valid JSON") from None
            self.records[record["key"]] = record
        self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for record in self.records.values():
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        records = list(records)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        for record in records:
            self.records[record["key"]] = record
