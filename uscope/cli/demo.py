"""`uscope demo`: the main job on the embedded default data (a SIMULATED population)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uscope.cli import app
from uscope.cli.data import describe_tensors


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Working directory for the run.")] = Path("runs/demo"),
    users: Annotated[int, typer.Option(help="Simulated users.")] = 24,
    days: Annotated[int, typer.Option(help="Days per user.")] = 7,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 0,
) -> None:
    """Simulate a small population, read it back, build behaviour tensors, print a summary."""
    from uscope.data import TensorConfig, build_tensors, load_events, save_events, simulate

    typer.echo(f"[1/3] simulating {users} users x {days} days (SIMULATED data, seed {seed})")
    population = simulate(n_users=users, days=days, seed=seed, out_dir=out / "population")
    events_path = save_events(population.events, out / "events.parquet")
    events = load_events(events_path)
    typer.echo(f"      {len(events)} events, {events['app'].nunique()} apps, "
               f"{events['location_id'].nunique()} base stations in "
               f"{events['location_category'].nunique()} location categories")
    typer.echo("[2/3] behaviour tensors (15-minute slots, 192 slots)")
    batch = build_tensors(events, TensorConfig())
    batch.save(out / "tensors.npz")
    typer.echo("      " + describe_tensors(batch))
    typer.echo("[3/3] per-user summary")
    per_user = events.groupby("user_id").agg(
        events=("app", "size"), top_category=("app_category", lambda s: s.mode().iat[0]),
        top_place=("location_category", lambda s: s.mode().iat[0]))
    per_user["archetype"] = [population.archetypes[u] for u in per_user.index]
    typer.echo(per_user.head(8).to_string())
    typer.echo(f"outputs in {out}")
