"""`uscope recommend` and `uscope eval recommend`: novelty recommendations and their evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uscope.cli import app
from uscope.cli.data import _fail, read_any

eval_app = typer.Typer(help="Evaluation harnesses.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@app.command()
def recommend(
    profiles: Annotated[Path, typer.Option(help="Profile set (parquet) from `uscope profile`.")],
    events: Annotated[Path, typer.Option(help="Event table or any readable source.")],
    user: Annotated[str, typer.Option(help="User id in the profile set.")],
    kind: Annotated[str, typer.Option(help="app | place | location | intent")] = "app",
    k: Annotated[int, typer.Option(help="How many items.")] = 5,
    strategy: Annotated[str, typer.Option(help="neighbours | popular | llm")] = "neighbours",
    explain: Annotated[bool, typer.Option(help="Add a short rationale per item.")] = False,
    hour: Annotated[float | None, typer.Option(help="Context: hour of day.")] = None,
    location: Annotated[str | None, typer.Option(help="Context: location category.")] = None,
) -> None:
    """Recommend apps, places, location categories or intents the user has not used yet."""
    from uscope.data import DataError
    from uscope.profile import ProfileSet
    from uscope.recommend import Recommender

    frame, _ = read_any(events, None, lenient=False, rejects=None)
    context = {key: value for key, value in (("hour", hour), ("location", location))
               if value is not None}
    try:
        recommender = Recommender(ProfileSet.load(profiles), frame, strategy)
        items = recommender.recommend(user, kind=kind, k=k, explain=explain, context=context)
    except (KeyError, ValueError, DataError, FileNotFoundError) as exc:
        _fail(str(exc).strip("'\""))
    if not items:
        typer.echo(f"user {user} has already used every {kind} in the catalogue")
    for rank, item in enumerate(items, start=1):
        line = f"{rank}. {item.item}  (score {item.score:.3f})"
        typer.echo(line + (f"\n   {item.rationale}" if item.rationale else ""))


@eval_app.command("recommend")
def eval_recommend(
    events: Annotated[Path, typer.Argument(help="Event table or any readable source.")],
    kind: Annotated[str, typer.Option(help="app | place | location | intent")] = "app",
    protocol: Annotated[str, typer.Option(help="novelty | coldstart")] = "novelty",
    strategies: Annotated[str, typer.Option(help="Comma-separated strategies.")] = (
        "popular,neighbours"),
    seeds: Annotated[int, typer.Option(help="Number of seeds (bootstrap resamples).")] = 3,
    cutoff: Annotated[float, typer.Option(help="Novelty cut-off, fraction of the time span.")]
    = 0.6,
    max_users: Annotated[int | None, typer.Option(help="Evaluate at most this many users.")]
    = None,
    out: Annotated[Path | None, typer.Option(help="CSV with one row per strategy and seed.")]
    = None,
) -> None:
    """Hide what users try later (novelty) or their apps (coldstart); score every strategy."""
    from uscope.data import DataError
    from uscope.recommend.evaluate import EvalConfig, evaluate_recommendations, summarise

    frame, _ = read_any(events, None, lenient=False, rejects=None)
    try:
        config = EvalConfig(kind=kind, protocol=protocol, seeds=tuple(range(seeds)),
                            strategies=tuple(s.strip() for s in strategies.split(",")),
                            cutoff=cutoff, max_users=max_users)
        results = evaluate_recommendations(frame, config, progress=typer.echo)
    except (ValueError, DataError) as exc:
        _fail(str(exc))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        results.to_csv(out, index=False)
    typer.echo(summarise(results).to_string())
