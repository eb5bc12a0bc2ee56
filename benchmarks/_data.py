"""Which data a benchmark runs on: the options every ``bench_*.py`` shares, in one place.

Every benchmark reaches its events through the dataset registry (``uscope.data.datasets``),
never through a file path of its own:

    python benchmarks/bench_intent.py --dataset foursquare-nyc --quick
    python benchmarks/bench_recommend.py --events my.parquet --column-map app=package

- ``--dataset NAME``: a registered dataset (default: the one the benchmark's BENCHMARKS.md
  section was measured on); ``--events PATH [--format F] [--column-map SCHEMA=SOURCE ...]``:
  your own file, read by the generic reader (``--format generic``, CSV / TSV / parquet by
  suffix) or by a registered reader (``--format netfp`` ...).
- A benchmark names the fields it needs (``DatasetSpec.fields``: apps, places, coordinates,
  place_categories, times, traffic, context). When the chosen data lacks one, the benchmark
  prints ONE line naming it and exits with ``EXIT_LACKS_FIELD`` (3), before any work.
- ``--quick``: few users, few steps (seconds; bench_synth / bench_tuning, which train
  SmolLM2, a minute or two); ``--no-write``: print only.
  BENCHMARKS.md sections: the default dataset keeps the section's name (``intent``); another
  registered dataset writes its own (``intent-foursquare-nyc``); quick runs and ``--events``
  (a user's own file) only print. Titles name the data by ``LoadedDataset.label``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from _report import markdown_table, write_section

from uscope.data.datasets import (
    DatasetSpec,
    LoadedDataset,
    dataset_names,
    get_spec,
    load_dataset,
)
from uscope.data.schema import DataError

# What each benchmark needs (``DatasetSpec.fields``): alternatives, any one of which will do.
# The README "Datasets" table is generated from this (``python benchmarks/_data.py``).
INTENT_NEEDS = {"honor": ("times", "apps"),                          # event = app
                "mobile": ("times", "places", "place_categories")}   # event = place
NEEDS: dict[str, list[tuple[str, ...]]] = {
    "bench_data": [("times",)],
    "bench_profile": [("apps",), ("place_categories",)],  # intents: app or place categories
    "bench_umask": [("times",)],
    "bench_umask_months": [("times", "coordinates")],
    "validate_umask_sampler": [("times",)],
    "bench_intent": list(INTENT_NEEDS.values()),
    "bench_intent_device": list(INTENT_NEEDS.values()),
    "bench_intent_longtail": list(INTENT_NEEDS.values()),
    "bench_recommend": [()],                     # the item kinds the data has
    "bench_recommend_completion": [("apps", "times")],
    "validate_recommend": [()],                  # the protocols the data supports
    "bench_llm_scoring": [("apps",)],            # default --kinds intent app
    "bench_synth": [("apps", "places", "place_categories", "times")],
    "bench_synth_real": [("places", "times")],   # a place without a category is its own
    "bench_tuning": [("apps", "place_categories", "times")],
}
EXIT_LACKS_FIELD = 3   # the data lacks a field the benchmark needs (one line on stderr)
EXIT_BAD_DATA = 2      # the data could not be read (one line on stderr)
GENERIC = "generic"
# fields an item kind of ``uscope.data.items`` needs (the recommendation benchmarks)
KIND_FIELDS = {"app": ("apps",), "intent": ("apps",), "location": ("place_categories",),
               "place": ("places",)}


def registered() -> list[str]:
    """The names ``--dataset`` accepts (``generic`` is reached through ``--events``)."""
    return [name for name in dataset_names() if name != GENERIC]


def add_dataset_args(parser: argparse.ArgumentParser, default: str = "netfp") -> None:
    """Add --dataset / --events / --format / --column-map / --max-users / --quick / --no-write."""
    group = parser.add_argument_group("data (uscope.data.datasets; README 'Datasets')")
    group.add_argument("--dataset", choices=registered(), default=default,
                       help=f"registered dataset (default: {default})")
    group.add_argument("--events", type=Path, default=None, metavar="PATH",
                       help="your own event file instead of --dataset (printed, never written)")
    group.add_argument("--format", default=GENERIC, choices=[GENERIC, *registered()],
                       help="reader of --events: generic (CSV / TSV / parquet by suffix, with "
                            "--column-map) or a registered dataset's reader")
    group.add_argument("--column-map", nargs="+", default=[], metavar="SCHEMA=SOURCE",
                       help="generic reader: schema column = column of your file")
    group.add_argument("--max-users", type=int, default=None, metavar="N",
                       help="keep the first N users by id (--quick sets a small default)")
    group.add_argument("--quick", action="store_true",
                       help="few users and steps (seconds; the SmolLM2 training benchmarks a "
                            "minute or two); never writes")
    group.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    parser.set_defaults(default_dataset=default)


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None,
               quick: dict[str, Any] | None = None) -> argparse.Namespace:
    """Parse; with --quick, ``quick`` replaces the defaults (options given explicitly win)."""
    args = parser.parse_args(argv)
    if args.quick and quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def _column_map(items: list[str]) -> dict[str, str]:
    pairs = [item.partition("=") for item in items]
    bad = [item for item, (_, eq, source) in zip(items, pairs) if not eq or not source]
    if bad:
        fail(f"--column-map expects SCHEMA=SOURCE, got {bad[0]!r}", EXIT_BAD_DATA)
    return {schema: source for schema, _, source in pairs}


def require(data: LoadedDataset | DatasetSpec, needs: tuple[str, ...] | list[str],
            what: str) -> None:
    """Exit with one line naming the first field of ``needs`` the data (or spec) lacks."""
    spec = data.spec if isinstance(data, LoadedDataset) else data
    try:
        spec.require(tuple(needs), what)
    except DataError as exc:
        fail(exc.reason, EXIT_LACKS_FIELD)


def load_named(name: str, needs: tuple[str, ...] | list[str], what: str, *,
               path: Path | None = None, max_users: int | None = None,
               **options: Any) -> LoadedDataset:
    """Load registered dataset ``name`` (from ``path``; default: its own folder), after checking
    that it has ``needs``; keep its first ``max_users`` users by id."""
    spec = get_spec(name)
    if name != GENERIC:  # a registered spec says its fields before anything is read
        require(spec, needs, what)
    try:
        data = load_dataset(name, path, **options)
    except (DataError, FileNotFoundError) as exc:
        fail(f"{what}: cannot read dataset {name!r}: {exc}", EXIT_BAD_DATA)
    require(data, needs, what)  # generic: the fields the file turned out to carry
    return first_users(data, max_users)


def first_users(data: LoadedDataset, n: int | None) -> LoadedDataset:
    """The data with only its first ``n`` users by id (all of them when ``n`` is None)."""
    if n is None:
        return data
    users = sorted(data.events["user_id"].unique())[:n]
    events = data.events[data.events["user_id"].isin(users)].reset_index(drop=True)
    return replace(data, events=events)


def load_for_benchmark(args: argparse.Namespace, needs: tuple[str, ...] | list[str],
                       what: str, quick_users: int | None = 60,
                       options: dict[str, dict[str, Any]] | None = None) -> LoadedDataset:
    """The data ``args`` chose (``--events`` or ``--dataset``), checked against ``needs``.

    ``options[name]`` are reader options of dataset ``name`` (e.g. ``{"netfp": {"language":
    "en"}}``); ``quick_users`` is the user limit of ``--quick`` unless ``--max-users`` is given.
    """
    options = dict(options or {})
    limit = args.max_users if args.max_users is not None else (
        quick_users if args.quick else None)
    if limit is not None:  # simulate only the users that are kept (a quick run: 2 days)
        options["simulated"] = {"n_users": limit, **({"days": 2} if args.quick else {}),
                                **options.get("simulated", {})}
    if args.events is not None:
        name = args.format
        extra = ({"column_map": _column_map(args.column_map)} if name == GENERIC
                 else options.get(name, {}))
        return load_named(name, needs, what, path=args.events, max_users=limit, **extra)
    if args.column_map:
        fail("--column-map applies to --events (your own file)", EXIT_BAD_DATA)
    return load_named(args.dataset, needs, what, max_users=limit,
                      **options.get(args.dataset, {}))


def section_name(args: argparse.Namespace, data: LoadedDataset, name: str) -> str | None:
    """The BENCHMARKS.md section of this run, or None when it only prints."""
    if args.no_write or args.quick or args.events is not None:
        return None
    return name if data.spec.name == args.default_dataset else f"{name}-{data.spec.name}"


def report(args: argparse.Namespace, data: LoadedDataset, name: str, title: str,
           body: str) -> Path | None:
    """Print ``body``; write it to this run's section (titled with the data's label)."""
    print(body, flush=True)
    section = section_name(args, data, name)
    if section is None:
        print(f"(not written to BENCHMARKS.md: {'quick run' if args.quick else 'print only'})")
        return None
    return write_section(section, f"{title}: {data.label}", body)


def quick_banner(args: argparse.Namespace) -> str:
    return "**QUICK SMOKE RUN: not the reported setting.** " if args.quick else ""


def tensor_config(data: LoadedDataset, days: int | None = None, observed: str = "active_slots"):
    """Tensors at the dataset's natural slot length over its days (at most ``days``)."""
    from uscope.data import TensorConfig

    slot = data.spec.slot_minutes or 60
    stamps = data.events["timestamp"]
    span = (stamps.max().normalize() - stamps.min().normalize()).days + 1
    days = min(span, days) if days else span
    return TensorConfig(slot_minutes=slot, n_slots=days * 24 * 60 // slot, observed=observed)


def data_argv(args: argparse.Namespace, dataset: str | None = None) -> list[str]:
    """The data options of ``args`` as command-line words (for a benchmark's worker processes);
    ``dataset`` names another registered dataset instead."""
    words = ["--dataset", dataset or args.dataset]
    if args.events is not None and dataset is None:
        words += ["--events", str(args.events), "--format", args.format]
        words += ["--column-map", *args.column_map] if args.column_map else []
    words += ["--max-users", str(args.max_users)] if args.max_users is not None else []
    return words + (["--quick"] if args.quick else [])


def kind_needs(kinds, fields) -> tuple[str, ...]:
    """The fields item kinds need; an intent is the app category where the data has apps,
    else the place category (``uscope.data.items.intent_column``)."""
    needs: list[str] = []
    for kind in kinds:
        if kind == "intent":
            needs.append("apps" if "apps" in fields or "place_categories" not in fields
                         else "place_categories")
        else:
            needs += KIND_FIELDS[kind]
    return tuple(dict.fromkeys(needs))


def runs_on(script: str, fields) -> str:
    """'yes', 'yes (places)' (the place alternative: the intent benchmarks' Mobile setting,
    place categories as intents) or '' for a benchmark and a dataset's fields."""
    for i, alternative in enumerate(NEEDS[script]):
        if all(f in fields for f in alternative):
            return "yes" if i == 0 else "yes (places)"
    return ""


def readme_table() -> str:
    """The README "Datasets" table: which benchmark runs on which registered dataset."""
    names = registered()
    rows = [{"benchmark": f"`{script}`", **{name: runs_on(script, get_spec(name).fields)
                                              for name in names}} for script in NEEDS]
    return markdown_table(rows, ["benchmark", *names])


def datasets_table() -> str:
    """The README list of registered datasets: what each holds and where it is read from."""
    where = {GENERIC: "`--events PATH [--column-map ...]`", "simulated": "(generated)",
             "tsinghua": "`--events DIR --format tsinghua`"}
    rows = [{"dataset": f"`{name}`",
             "data": "yours" if name == GENERIC else "real" if spec.real else "**SIMULATED**",
             "fields": ", ".join(sorted(spec.fields)) or "those the file holds",
             "read from (`../shared/data/`)": where.get(name, f"`{spec.path}`"),
             "what": spec.description}
            for name, spec in ((n, get_spec(n)) for n in dataset_names())]
    return markdown_table(rows)


if __name__ == "__main__":
    print(datasets_table(), readme_table(), sep="\n\n")
