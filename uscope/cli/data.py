"""`uscope simulate`, `uscope read`, `uscope tensors`: the data-layer commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uscope.cli import app

FORMATS = ("tsinghua", "netfp", "csv", "parquet")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def read_any(source: Path, fmt: str | None, lenient: bool, rejects: Path | None):
    """Read a Tsinghua directory, the netfp CSV, or a generic CSV/parquet into events."""
    from uscope import data

    errors = "lenient" if lenient else "raise"
    if fmt is None:
        fmt = ("tsinghua" if source.is_dir() else
               "parquet" if source.suffix in (".parquet", ".pq") else
               "netfp" if source.name.startswith("data0") else "csv")
    if fmt not in FORMATS:
        _fail(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    try:
        if fmt == "tsinghua":
            result = data.read_tsinghua(source, errors=errors, rejects_path=rejects)
            return result.events, result.report
        if fmt == "netfp":
            return data.read_netfp(source, errors=errors, rejects_path=rejects)
        return data.read_events(source, errors=errors, rejects_path=rejects)
    except data.DataError as exc:
        _fail(str(exc))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Directory for the Tsinghua-format files.")],
    users: Annotated[int, typer.Option(help="Number of simulated users.")] = 60,
    days: Annotated[int, typer.Option(help="Days of history per user.")] = 7,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
) -> None:
    """Write a SIMULATED population in the Tsinghua App Usage format, plus events.parquet."""
    from uscope.data import save_events
    from uscope.data import simulate as run_simulation

    population = run_simulation(n_users=users, days=days, seed=seed, out_dir=out)
    save_events(population.events, out / "events.parquet")
    typer.echo(f"simulated {users} users x {days} days -> {len(population.events)} events "
               f"in {out} (SIMULATED data)")


@app.command("read")
def read_command(
    source: Annotated[Path, typer.Argument(help="Tsinghua directory, netfp CSV, CSV or parquet.")],
    out: Annotated[Path, typer.Option(help="Where to write the validated events (parquet).")],
    fmt: Annotated[str | None, typer.Option("--format", help="|".join(FORMATS))] = None,
    lenient: Annotated[bool, typer.Option(help="Set bad lines aside instead of failing.")] = False,
    rejects: Annotated[Path | None, typer.Option(help="Side file for rejected lines.")] = None,
) -> None:
    """Read and validate events; report rows in, accepted and rejected."""
    from uscope.data import save_events

    if lenient and rejects is None:
        rejects = out.with_suffix(".rejects.tsv")
    events, report = read_any(source, fmt, lenient, rejects)
    save_events(events, out)
    typer.echo(report.summary())
    if report.rejected:
        typer.echo(f"rejected lines with reasons: {rejects}")
    typer.echo(f"{events['user_id'].nunique()} users, {len(events)} events -> {out}")


@app.command()
def tensors(
    events: Annotated[Path, typer.Argument(help="Event table (parquet) or any readable source.")],
    out: Annotated[Path, typer.Option(help="Output .npz (a .json sidecar is written too).")],
    slot_minutes: Annotated[int, typer.Option(help="Slot length in minutes.")] = 15,
    slots: Annotated[int, typer.Option(help="Number of time slots T.")] = 192,
    spatial: Annotated[str, typer.Option(help="categories | latlon")] = "categories",
) -> None:
    """Build behaviour tensors X_u (C x T x H x W) with observed masks and save them."""
    from uscope.data import TensorConfig, build_tensors

    frame, _ = read_any(events, None, lenient=False, rejects=None)
    batch = build_tensors(frame, TensorConfig(slot_minutes=slot_minutes, n_slots=slots,
                                              spatial=spatial))
    batch.save(out)
    typer.echo(describe_tensors(batch))


def describe_tensors(batch) -> str:
    n, c, t, h, w = batch.shape
    groups = ", ".join(f"{k}: {len(v)}" for k, v in batch.channel_groups.items())
    return (f"{n} users, X_u of shape C x T x H x W = {c} x {t} x {h} x {w} ({groups}); "
            f"{batch.observed_mask.mean():.1%} of slots observed; slot 0 = {batch.start}")
