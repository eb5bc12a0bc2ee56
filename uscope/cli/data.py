"""`uscope simulate`, `uscope read`, `uscope tensors`: the data-layer commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uscope.cli import app

# names kept from before the registry: both mean a generic table
FORMAT_ALIASES = {"csv": "generic", "parquet": "generic"}


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _formats() -> str:
    from uscope.data.datasets import dataset_names

    return ", ".join(n for n in dataset_names() if n != "simulated")


def read_any(source: Path, fmt: str | None, lenient: bool, rejects: Path | None):
    """Read any registered dataset's file or folder (recognised from its files) into events."""
    from uscope.data import DataError
    from uscope.data.datasets import REGISTRY
    from uscope.data.datasets import read_any as read_dataset

    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt is not None and (fmt not in REGISTRY or fmt == "simulated"):
        _fail(f"unknown format {fmt!r}; choose one of {_formats()}")
    options = {"errors": "lenient" if lenient else "raise", "rejects_path": rejects}
    try:
        loaded = read_dataset(source, fmt, **options)
    except DataError as exc:
        _fail(str(exc))
    return loaded.events, loaded.report


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Directory for the Tsinghua-format files.")],
    users: Annotated[int, typer.Option(help="Number of simulated users.")] = 60,
    days: Annotated[int, typer.Option(help="Days of history per user.")] = 7,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
    events_per_day: Annotated[float | None, typer.Option(
        help="Density: expected app uses (trace rows) per user per day, e.g. 596 for the real "
             "Tsinghua trace (4.17 M rows for 1,000 users x 7 days). Default: the "
             "archetypes' own rates, about 45 a day.")] = None,
) -> None:
    """Write a SIMULATED population in the Tsinghua App Usage format, plus events.parquet."""
    from uscope.data import save_events
    from uscope.data import simulate as run_simulation

    try:
        population = run_simulation(n_users=users, days=days, seed=seed, out_dir=out,
                                    events_per_day=events_per_day)
    except ValueError as exc:
        _fail(str(exc))
    save_events(population.events, out / "events.parquet")
    typer.echo(f"simulated {users} users x {days} days -> {len(population.events)} events "
               f"in {out} (SIMULATED data)")


@app.command("read")
def read_command(
    source: Annotated[Path, typer.Argument(help="A dataset folder or file (format recognised "
                                              "from its files), a CSV or a parquet.")],
    out: Annotated[Path | None, typer.Option(help="Write the validated events here (parquet)."
                                             )] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="netfp, tsinghua, foursquare-nyc, studentlife, frappe, "
                         "shanghai-sample or generic (CSV / parquet).")] = None,
    lenient: Annotated[bool, typer.Option(help="Set bad lines aside instead of failing.")] = False,
    rejects: Annotated[Path | None, typer.Option(help="Side file for rejected lines.")] = None,
) -> None:
    """Read and validate events; report rows in, accepted and rejected, and the users."""
    from uscope.data import save_events

    if lenient and rejects is None:
        rejects = (out or Path(source.name)).with_suffix(".rejects.tsv")
    events, report = read_any(source, fmt, lenient, rejects)
    typer.echo(report.summary())
    for note in report.notes:
        typer.echo(f"note: {note}")
    if report.rejected:
        typer.echo(f"rejected lines with reasons: {rejects}")
    with_app = int(events["app"].notna().sum())
    line = (f"{events['user_id'].nunique()} users, {len(events)} events "
            f"({with_app} app uses, {len(events) - with_app} place-only)")
    if out is not None:
        save_events(events, out)
        line += f" -> {out}"
    typer.echo(line)


@app.command()
def tensors(
    events: Annotated[Path, typer.Argument(help="Event table (parquet) or any readable source.")],
    out: Annotated[Path, typer.Option(help="Output .npz (a .json sidecar is written too).")],
    slot_minutes: Annotated[int, typer.Option(help="Slot length in minutes.")] = 15,
    slots: Annotated[int, typer.Option(help="Number of time slots T.")] = 192,
    spatial: Annotated[str, typer.Option(
        help="categories | latlon (a lat/lon grid) | clusters (k-means place clusters)")
    ] = "categories",
    grid: Annotated[tuple[int, int] | None, typer.Option(
        help="H W cells of latlon or clusters (default 8 8 and 3 3)")] = None,
) -> None:
    """Build behaviour tensors X_u (C x T x H x W) with observed masks and save them."""
    from uscope.data import TensorConfig, build_tensors

    frame, _ = read_any(events, None, lenient=False, rejects=None)
    batch = build_tensors(frame, TensorConfig(slot_minutes=slot_minutes, n_slots=slots,
                                              spatial=spatial, grid=grid))
    batch.save(out)
    typer.echo(describe_tensors(batch))


def describe_tensors(batch) -> str:
    n, c, t, h, w = batch.shape
    groups = ", ".join(f"{k}: {len(v)}" for k, v in batch.channel_groups.items())
    return (f"{n} users, X_u of shape C x T x H x W = {c} x {t} x {h} x {w} ({groups}); "
            f"{batch.observed_mask.mean():.1%} of slots observed; slot 0 = {batch.start}")
