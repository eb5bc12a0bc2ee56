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
    strategy: Annotated[str, typer.Option(
        help="hybrid | popular | neighbours | itemknn | userknn | ease | als | bpr | llm")]
    = "hybrid",
    explain: Annotated[bool, typer.Option(help="Add a short rationale per item.")] = False,
    hour: Annotated[float | None, typer.Option(help="Context: hour of day.")] = None,
    location: Annotated[str | None, typer.Option(help="Context: location category.")] = None,
    context: Annotated[list[str] | None, typer.Option(
        help="Context KEY=VALUE (repeatable): weekday, or a key of the events' context "
             "column such as daytime or homework.")] = None,
) -> None:
    """Recommend apps, places, location categories or intents the user has not used yet."""
    from uscope.data import DataError
    from uscope.profile import ProfileSet
    from uscope.recommend import Recommender

    frame, _ = read_any(events, None, lenient=False, rejects=None)
    situation = {key: value for key, value in (("hour", hour), ("location", location))
                 if value is not None}
    for pair in context or []:
        key, equals, value = pair.partition("=")
        if not equals or not key or not value:
            _fail(f"--context takes KEY=VALUE, got {pair!r}")
        situation[key] = value
    try:
        recommender = Recommender(ProfileSet.load(profiles), frame, strategy)
        items = recommender.recommend(user, kind=kind, k=k, explain=explain, context=situation)
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
    protocol: Annotated[str, typer.Option(
        help="novelty | later-weeks | leave-out | cold | apps-from-locations")] = "novelty",
    strategies: Annotated[str, typer.Option(help="Comma-separated strategies.")] = (
        "popular,itemknn,userknn,ease,als,hybrid"),
    users: Annotated[str, typer.Option(
        help="Evaluate the validation or test half of the users, or all.")] = "test",
    seeds: Annotated[int, typer.Option(help="Number of seeds.")] = 3,
    cutoff: Annotated[float, typer.Option(help="novelty: cut-off, fraction of the time span.")]
    = 0.6,
    fraction: Annotated[float, typer.Option(help="leave-out: share of items hidden.")] = 0.2,
    max_known: Annotated[int, typer.Option(help="cold: items each user keeps.")] = 5,
    use_context: Annotated[bool, typer.Option(
        "--context/--no-context", help="Query with the hidden rows' context.")] = False,
    max_users: Annotated[int | None, typer.Option(help="Evaluate at most this many users.")]
    = None,
    out: Annotated[Path | None, typer.Option(help="CSV with one row per strategy and seed.")]
    = None,
) -> None:
    """Hide part of the users' items (by time, at random, all but a few, or their apps) and
    score every strategy on the same users, with paired differences to the first one."""
    from uscope.data import DataError
    from uscope.recommend.evaluate import EvalConfig, run_evaluation, summarise

    frame, _ = read_any(events, None, lenient=False, rejects=None)
    names = tuple(s.strip() for s in strategies.split(",") if s.strip())
    try:
        config = EvalConfig(kind=kind, protocol=protocol, seeds=tuple(range(seeds)),
                            strategies=names, users=users, cutoff=cutoff, fraction=fraction,
                            max_known=max_known, use_context=use_context, max_users=max_users)
        evaluation = run_evaluation(frame, config, progress=typer.echo)
    except (ValueError, KeyError, DataError) as exc:
        _fail(str(exc).strip("'\""))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        evaluation.results.to_csv(out, index=False)
    typer.echo(summarise(evaluation.results).to_string())
    if len(names) > 1:
        for metric in ("Recall@10", "NDCG@10"):
            typer.echo(evaluation.paired(names[0], metric).to_string(index=False))
