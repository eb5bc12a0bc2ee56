"""Timing and memory helpers shared by the benchmark scripts."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def interleaved(functions: dict[str, Callable[[], Any]], repeats: int
                ) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds of ``repeats`` calls of each function, called in turn (A B C, A B C, ...)
    so that a change in the machine's load falls on all of them alike; and each last result."""
    seconds: dict[str, list[float]] = {name: [] for name in functions}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            results[name] = function()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in seconds.items()}, results


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


def reset_peak() -> bool:
    """Restart the peak (VmHWM) from the current RSS (Linux); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def simulated_parquet(n_users: int, work: Path) -> tuple[Path, int]:
    """A SIMULATED population of one day (about 45 app uses a user) as a user-sorted event
    parquet under ``work``; returns its path and row count."""
    from uscope.data import simulate
    from uscope.data.schema import save_events

    folder = work / f"sim{n_users}"
    population = simulate(n_users=n_users, days=1, seed=0, out_dir=folder, events_per_day=45)
    return save_events(population.events, folder / "events.parquet"), len(population.events)
