"""The dataset registry: a name -> its loader and what the data can support.

Every benchmark and the ``uscope read`` command reach data through here, so a stage never
hard-codes a file. A ``DatasetSpec`` says which fields the events carry (``apps``, ``places``,
``coordinates``, ``times``, ``traffic``, ``context``), which item kinds and tasks that allows,
the natural slot length and the split protocol the benchmarks use. ``generic`` wraps a user's
own file with a column map; ``simulated`` is the package's simulator and is labelled as such.

>>> from uscope.data.datasets import load_dataset
>>> data = load_dataset("foursquare-nyc")          # ../shared/data/foursquare_nyc
>>> data.events, data.report, data.spec.fields
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from uscope.data.schema import DataError, ReadReport, has_apps, has_places, has_times

# field name -> the event column whose values it means (for the one-line "missing" message)
FIELD_COLUMNS = {
    "apps": "app", "places": "location_id", "coordinates": "latitude", "times": "timestamp",
    "traffic": "traffic_bytes", "context": "context", "place_categories": "location_category",
}


def shared_data_root() -> Path:
    """``$USCOPE_DATA`` or ``../shared/data`` next to the repository (where the real data is)."""
    env = os.environ.get("USCOPE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass
class LoadedDataset:
    """Events of a registered dataset, the reader's report, and anything the reader kept aside
    (a location map, app metadata)."""

    spec: DatasetSpec
    events: pd.DataFrame
    report: ReadReport
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How tables name the data: ``name (real)`` or ``name (SIMULATED)``."""
        return f"{self.spec.name} ({'real' if self.spec.real else 'SIMULATED'})"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    loader: Callable[..., LoadedDataset] = field(repr=False, compare=False)
    path: str | None = None  # under shared_data_root(); None = needs no file (simulated)
    fields: frozenset[str] = frozenset()
    kinds: tuple[str, ...] = ()  # item kinds of uscope.data.items it supports
    tasks: tuple[str, ...] = ()  # profile, tensors, complete, intent, recommend
    slot_minutes: int = 60  # natural slot length of its tensors
    split: str = "users"  # how benchmarks split it (see README "Datasets")
    real: bool = True

    def missing(self, needs: tuple[str, ...] | list[str]) -> list[str]:
        return [f for f in needs if f not in self.fields]

    def require(self, needs: tuple[str, ...] | list[str], what: str = "this benchmark") -> None:
        """Raise one line naming the first field the dataset lacks."""
        lacking = self.missing(needs)
        if lacking:
            column = FIELD_COLUMNS.get(lacking[0], lacking[0])
            raise DataError(f"{what} needs {lacking[0]}, and dataset {self.name!r} has none",
                            source=self.name, field=column)


REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    REGISTRY[spec.name] = spec
    return spec


def dataset_names() -> list[str]:
    return sorted(REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    if name not in REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; registered: {', '.join(dataset_names())}")
    return REGISTRY[name]


def load_dataset(name: str, path: str | Path | None = None, **options: Any) -> LoadedDataset:
    """Load a registered dataset from `path` (default: its folder under shared_data_root())."""
    spec = get_spec(name)
    if path is None and spec.path is not None:
        path = shared_data_root() / spec.path
    return spec.loader(spec, path, **options)


def fields_of(events: pd.DataFrame) -> frozenset[str]:
    """The fields an event table really carries (for ``generic`` data)."""
    found = set()
    if has_apps(events):
        found.add("apps")
    if has_places(events):
        found.add("places")
    if events["latitude"].notna().any():
        found.add("coordinates")
    if events["location_category"].notna().any():
        found.add("place_categories")
    if has_times(events):
        found.add("times")
    if events["traffic_bytes"].notna().any():
        found.add("traffic")
    if events["context"].notna().any():
        found.add("context")
    return frozenset(found)


def _from_events(spec: DatasetSpec, events: pd.DataFrame, report: ReadReport,
                 **extras: Any) -> LoadedDataset:
    return LoadedDataset(spec, events, report, dict(extras))


# ---------------------------------------------------------------------------- loaders

def _netfp(spec, path, **options):
    from uscope.data.netfp import read_netfp

    events, report = read_netfp(path, **options)
    return _from_events(spec, events, report)


def _tsinghua(spec, path, **options):
    from uscope.data.tsinghua import read_tsinghua

    data = read_tsinghua(path, **options)
    return _from_events(spec, data.events, data.report, locations=data.locations)


def _simulated(spec, path, *, n_users: int = 200, days: int = 7, seed: int = 0, **options):
    import tempfile

    from uscope.data.simulate import simulate

    with tempfile.TemporaryDirectory() as tmp:
        population = simulate(n_users=n_users, days=days, seed=seed, out_dir=path or tmp,
                              **options)
    extra = "".join(f", {k}={v!r}" for k, v in options.items())  # e.g. events_per_day
    report = ReadReport(f"simulate(n_users={n_users}, days={days}, seed={seed}{extra})",
                        rows_in=len(population.events), accepted=len(population.events))
    return _from_events(spec, population.events, report, population=population)


def _generic(spec, path, *, column_map=None, **options):
    from uscope.data.generic import read_events

    if path is None:
        raise DataError("dataset 'generic' needs a file: --events PATH [--column-map ...]",
                        source="generic")
    events, report = read_events(path, column_map, **options)
    # a user's own file: the spec says what this file turned out to carry
    real = DatasetSpec(name=f"generic:{Path(path).name}", description=spec.description,
                       loader=spec.loader, fields=fields_of(events), kinds=spec.kinds,
                       tasks=spec.tasks, slot_minutes=spec.slot_minutes, split=spec.split)
    return LoadedDataset(real, events, report)


def _foursquare(spec, path, **options):
    from uscope.data.foursquare import read_foursquare

    data = read_foursquare(path, **options)
    return _from_events(spec, data.events, data.report, weeks=data.weeks)


def _studentlife(spec, path, **options):
    from uscope.data.frappe import package_categories
    from uscope.data.studentlife import read_studentlife

    meta = Path(path).resolve().parent / "frappe" / "meta.csv"
    if "app_categories" not in options and meta.exists():
        options["app_categories"] = package_categories(meta)  # Play categories by package

    data = read_studentlife(path, **options)
    return _from_events(spec, data.events, data.report)


def _frappe(spec, path, **options):
    from uscope.data.frappe import read_frappe

    data = read_frappe(path, **options)
    return _from_events(spec, data.events, data.report, apps=data.apps)


def _shanghai(spec, path, **options):
    from uscope.data.shanghai import read_shanghai_sample

    data = read_shanghai_sample(path, **options)
    return _from_events(spec, data.events, data.report, locations=data.locations)


_ALL_TASKS = ("profile", "tensors", "complete", "intent", "recommend")
register(DatasetSpec(
    "netfp", "real hourly app use of 1,203 devices for one day (no place)", _netfp,
    path="netfp/data0117_dev.csv", fields=frozenset({"apps", "times"}),
    kinds=("app", "intent"), tasks=_ALL_TASKS, slot_minutes=60, split="users"))
register(DatasetSpec(
    "foursquare-nyc", "real check-ins of 124 people in New York over 10-42 weeks (no app)",
    _foursquare, path="foursquare_nyc",
    fields=frozenset({"places", "coordinates", "place_categories", "times"}),
    kinds=("place", "location", "intent"), tasks=_ALL_TASKS, slot_minutes=180,
    split="weeks"))
register(DatasetSpec(
    "studentlife", "real app use and GPS of 2 students, GPS alone of 31 more, over a term",
    _studentlife, path="studentlife",
    fields=frozenset({"apps", "places", "coordinates", "times"}),
    kinds=("app", "place", "intent"), tasks=_ALL_TASKS, slot_minutes=60, split="weeks"))
register(DatasetSpec(
    "frappe", "real context-aware app use of 630 users, 3,153 apps (no times)", _frappe,
    path="frappe", fields=frozenset({"apps", "context"}), kinds=("app", "intent"),
    tasks=("profile", "recommend"), slot_minutes=0, split="leave-out"))
register(DatasetSpec(
    "shanghai-sample", "real rows of a Tsinghua-derived trace, 6 users, one day", _shanghai,
    path="shanghai_sample",
    fields=frozenset({"apps", "places", "coordinates", "place_categories", "times", "traffic"}),
    kinds=("app", "place", "location", "intent"), tasks=_ALL_TASKS, slot_minutes=15,
    split="users"))
register(DatasetSpec(
    "tsinghua", "a directory in the Tsinghua App Usage format (trace + companion files)",
    _tsinghua, path=None,
    fields=frozenset({"apps", "places", "place_categories", "times", "traffic"}),
    kinds=("app", "place", "location", "intent"), tasks=_ALL_TASKS, slot_minutes=15))
register(DatasetSpec(
    "simulated", "the package's SIMULATED population (apps, places, traffic)", _simulated,
    path=None,
    fields=frozenset({"apps", "places", "place_categories", "times", "traffic"}),
    kinds=("app", "place", "location", "intent"), tasks=_ALL_TASKS, slot_minutes=15,
    split="users", real=False))
register(DatasetSpec(
    "generic", "your own CSV / parquet with a column map", _generic, path=None,
    kinds=("app", "place", "location", "intent"), tasks=_ALL_TASKS, slot_minutes=60))


# ------------------------------------------------------------------ format detection

# a folder is recognised by the file it must hold
_FOLDER_MARKERS = (
    ("tsinghua", "App_Usage_Trace.txt"),
    ("foursquare-nyc", "specific_train.csv"),
    ("frappe", "frappe.csv"),
    ("shanghai-sample", "data_sample.csv"),
    ("studentlife", "app.csv"),
)


def detect_format(path: str | Path) -> str:
    """The registered dataset a file or folder is, from its files; ``generic`` otherwise."""
    path = Path(path)
    if not path.exists():
        raise DataError("file or folder does not exist", source=str(path))
    if path.is_dir():
        for name, marker in _FOLDER_MARKERS:
            if (path / marker).exists():
                return name
        raise DataError("no known dataset in this folder (looked for "
                        + ", ".join(m for _, m in _FOLDER_MARKERS)
                        + "); pass a file, or --format", source=str(path))
    if path.suffix == ".csv":
        with path.open("rb") as handle:
            head = handle.readline().strip().lstrip(b"\xef\xbb\xbf")
        if head == b"id,hour,app,app_cat,times":
            return "netfp"
        if head.startswith(b"tid,label,lat,lon"):
            return "foursquare-nyc"
        if head.startswith(b"userId,timestamp,device,RUNNING_TASKS"):
            return "studentlife"
        if head.startswith(b"user\titem\tcnt"):
            return "frappe"
        if head.startswith(b"user_id,time,location,app_id"):
            return "shanghai-sample"
    return "generic"


def read_any(path: str | Path, fmt: str | None = None, **options: Any) -> LoadedDataset:
    """Read a file or folder as the registered dataset `fmt` (recognised when None)."""
    fmt = fmt or detect_format(path)
    spec = get_spec(fmt)
    if fmt in ("foursquare-nyc", "frappe", "shanghai-sample") and Path(path).is_file():
        path = Path(path).parent  # one file of a folder dataset: its reader reads the folder
    return spec.loader(spec, path, **options)
