"""Where the batch job's events come from: a table in memory, or a parquet file read in blocks
of whole users, so that memory holds a block at a time however many users the file has.

A parquet file must be sorted by user_id (``uscope read --out`` and ``save_events`` write it
so);
its blocks are validated one by one and an unsorted file stops with the row where a user
reappears.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from uscope.data.schema import ROW_GROUP_ROWS, DataError, validate_events
from uscope.profile.features import user_slices

BLOCK_ROWS = ROW_GROUP_ROWS  # parquet rows read at a time (whole users are kept together)


def _malloc_trim():
    """glibc's ``malloc_trim``, or None on another C library."""
    if platform.system() != "Linux":
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand freed memory back to the system: Arrow's unused pool pages and, with glibc, the free
    pages of malloc's heap (a finished chunk's frames, kernels an encoder's cache evicted), so a
    long job's resident memory follows what it holds rather than what it once held. Call it
    after dropping the references to what is done."""
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


@dataclass
class Block:
    """Events of some whole users, validated, with each user's rows."""

    events: pd.DataFrame
    slices: dict[str, slice]
    users: list[str]  # the users of this block to profile, in job order


class TableSource:
    """An event table already in memory: one block."""

    def __init__(self, events: pd.DataFrame):
        self.events = validate_events(events)
        self.name = "<events>"

    def users(self) -> list[str]:
        return sorted(self.events["user_id"].astype(str).unique().tolist())

    def blocks(self, wanted: Sequence[str]) -> Iterator[Block]:
        yield Block(self.events, user_slices(self.events), list(wanted))


class ParquetSource:
    """A user-sorted parquet event table, read ``block_rows`` rows at a time."""

    def __init__(self, path: str | os.PathLike, block_rows: int = BLOCK_ROWS):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"event table {self.path} does not exist")
        self.block_rows = block_rows
        self.name = str(self.path)

    def _batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Tables of whole users: each batch, less the user it ends in, carried to the next
        (only ``columns``, default all)."""
        carry: pa.Table | None = None
        reader = pq.ParquetFile(self.path)
        if "user_id" not in reader.schema_arrow.names:
            raise DataError("event table lacks required columns ['user_id']", source=self.name,
                            field="user_id")
        for batch in reader.iter_batches(batch_size=self.block_rows, columns=columns):
            table = pa.Table.from_batches([batch])
            if carry is not None:
                table = pa.concat_tables([carry, table])
            ids = table.column("user_id")
            last = ids[len(ids) - 1]
            keep = pc.not_equal(ids, last)
            complete = table.filter(keep)
            carry = table.filter(pc.invert(keep))
            if complete.num_rows:
                yield complete
        if carry is not None and carry.num_rows:
            yield carry

    def users(self) -> list[str]:
        """Distinct users in file order, checking that each user's rows are contiguous and that
        the users come sorted."""
        seen: list[str] = []
        row = 0
        for table in self._batches(columns=["user_id"]):
            ids = table.column("user_id").cast(pa.string())
            for uid in pc.unique(ids).to_pylist():
                if uid is None:
                    raise DataError("missing value", source=self.name, field="user_id",
                                    line=row + pc.index(pc.is_null(ids), True).as_py())
                if seen and uid <= seen[-1]:
                    at = row + pc.index(ids, uid).as_py()
                    raise DataError(f"user {uid!r} comes after {seen[-1]!r}: the file is not "
                                    "sorted by user_id (write it with `uscope read ... --out` "
                                    "or save_events)", source=self.name, line=at, field="user_id")
                seen.append(uid)
            row += table.num_rows
        return seen

    def blocks(self, wanted: Sequence[str]) -> Iterator[Block]:
        wanted_set = set(wanted)
        for table in self._batches():
            ids = pc.unique(table.column("user_id").cast(pa.string())).to_pylist()
            users = [u for u in ids if u in wanted_set]
            if not users:
                continue
            events = validate_events(table.to_pandas(), source=self.name)
            del table
            yield Block(events, user_slices(events), users)
            release_freed_memory()  # the Arrow table just deleted, and earlier blocks' frames


Source = TableSource | ParquetSource


def event_source(events: pd.DataFrame | str | os.PathLike | Source) -> Source:
    """A table in memory as one block; a parquet path read in blocks of users."""
    if isinstance(events, (TableSource, ParquetSource)):
        return events
    if isinstance(events, pd.DataFrame):
        return TableSource(events)
    return ParquetSource(events)
