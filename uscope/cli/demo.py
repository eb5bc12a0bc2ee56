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
    users: Annotated[int, typer.Option(help="Simulated users.")] = 12,
    days: Annotated[int, typer.Option(help="Days per user.")] = 7,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 0,
    backend: Annotated[str, typer.Option(help="Profile writer: transformers (the bundled "
                                                "SmolLM2) or heuristic.")] = "transformers",
    show: Annotated[int, typer.Option(help="How many profiles to print.")] = 3,
    max_new_tokens: Annotated[int, typer.Option(help="Profile length budget (tokens).")] = 160,
) -> None:
    """Simulate a population, build behaviour tensors, profile every user with the default LLM,
    and recommend apps they have not used yet."""
    from uscope.data import TensorConfig, build_tensors, load_events, save_events, simulate
    from uscope.profile import GenerationConfig, profile_users
    from uscope.recommend import Recommender

    typer.echo(f"[1/4] simulating {users} users x {days} days (SIMULATED data, seed {seed})")
    population = simulate(n_users=users, days=days, seed=seed, out_dir=out / "population")
    events_path = save_events(population.events, out / "events.parquet")
    events = load_events(events_path)
    typer.echo(f"      {len(events)} events, {events['app'].nunique()} apps, "
               f"{events['location_id'].nunique()} base stations in "
               f"{events['location_category'].nunique()} location categories")
    typer.echo("[2/4] behaviour tensors (15-minute slots, 192 slots)")
    batch = build_tensors(events, TensorConfig())
    batch.save(out / "tensors.npz")
    typer.echo("      " + describe_tensors(batch))
    typer.echo(f"[3/4] U-SCOPE profiles ({backend} backend, then all-MiniLM-L6-v2 embeddings)")
    with typer.progressbar(length=events["user_id"].nunique(), label="      profiling") as bar:
        profiles = profile_users(events, backend=backend, on_batch=bar.update,
                                 generation=GenerationConfig(max_new_tokens=max_new_tokens))
    profiles.save(out / "profiles.parquet")
    typer.echo("      " + profiles.summary())
    recommender = Recommender(profiles, events)
    typer.echo("[4/4] a few users: archetype (ground truth of the simulation), profile, "
               "novel apps recommended by similar users")
    for user_id, text in profiles.frame[["user_id", "profile"]].head(show).itertuples(index=False):
        picks = recommender.recommend(user_id, kind="intent", k=3)
        typer.echo(f"\n  user {user_id} ({population.archetypes[user_id]}):\n  "
                   f"{(text or '').strip()}\n  new app categories to try: "
                   + ", ".join(p.item for p in picks))
    typer.echo(f"\noutputs in {out} (events.parquet, tensors.npz, profiles.parquet)")
