"""`uscope intent predict`: next-intent prediction with a trained PITuning model (issue 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from uscope.cli import app
from uscope.cli.data import _fail, read_any

intent_app = typer.Typer(help="PITuning next-intent prediction (event = app, intent = "
                              "category, or place / place category).", no_args_is_help=True)
app.add_typer(intent_app, name="intent")


@intent_app.command("predict")
def predict(
    events: Annotated[Path, typer.Argument(help="Events: parquet table, Tsinghua dir, netfp or "
                                                "generic CSV.")],
    model: Annotated[Path, typer.Option(help="Folder written by recipes/train_intent.py "
                                             "(a student or teacher; adapters are used when "
                                             "present).")],
    user: Annotated[list[str] | None, typer.Option(help="User id(s); default: every user.")]
    = None,
    top_k: Annotated[int, typer.Option(help="Intents listed per user.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    fmt: Annotated[str | None, typer.Option("--format", help="Input format (default: by "
                                                             "suffix).")] = None,
    at: Annotated[str | None, typer.Option(help="Time the prediction is for, e.g. "
                                                "'2017-01-17 21:00' (read by models trained "
                                                "with query_time); default: each user's last "
                                                "recorded slot.")] = None,
    profiles: Annotated[Path | None, typer.Option(
        help="ProfileSet parquet: h_u by user id, for a model trained with profiles.")] = None,
    missing_profiles: Annotated[str, typer.Option(
        help="Users without a profile: 'error' or 'mean' (the mean h_u).")] = "error",
) -> None:
    """Predict each user's next intent from their last I behaviours."""
    import torch

    from generative.intent import load_adapters, load_predictor
    from generative.intent.data import build_sequences, latest_windows
    from generative.intent.individual import readout_with
    from uscope.data import DataError

    try:
        predictor, vocab, data_config, _ = load_predictor(model)
    except FileNotFoundError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    table, _ = read_any(events, fmt, lenient=False, rejects=None)
    if user:
        unknown = sorted(set(user) - set(table["user_id"].astype(str)))
        if unknown:
            typer.secho(f"error: user(s) not in {events}: {', '.join(unknown)}",
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2)
        table = table[table["user_id"].astype(str).isin(user)]
    try:
        seqs = build_sequences(table, data_config, vocab, source=str(events))
    except DataError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    adapters = load_adapters(model)
    try:
        windows = latest_windows(seqs, data_config, at=at)
    except (ValueError, TypeError) as exc:
        typer.secho(f"error: --at {at!r}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    inputs = windows.inputs()
    if predictor.config.user_embedding_dim > 0:
        inputs["user_embedding"] = _user_embeddings(profiles, missing_profiles, seqs.user_ids)
    elif profiles is not None:
        typer.secho("error: --profiles given, but this model was trained without h_u",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    typer.echo(f"model backbone: {predictor.backbone_label}; "
               f"{len(adapters)} per-user adapters", err=True)
    with torch.no_grad():
        hidden = predictor.encode(**inputs)
        for i, uid in enumerate(seqs.user_ids):
            adapter = adapters.get(uid)
            logits = readout_with(predictor, adapter.tensors if adapter else None,
                                  hidden[i:i + 1], windows.length[i:i + 1])[0]
            probs = torch.softmax(logits, -1)
            top = torch.topk(probs, min(top_k, len(probs)))
            ranked = [(vocab.intents[j], float(p)) for p, j in zip(top.values, top.indices)]
            if as_json:
                typer.echo(json.dumps({"user_id": uid, "personalised": adapter is not None,
                                       "intents": [{"intent": n, "p": round(p, 4)}
                                                   for n, p in ranked]}, ensure_ascii=False))
            else:
                shown = ", ".join(f"{n} ({p:.2f})" for n, p in ranked)
                typer.echo(f"{uid}\t{shown}")


def _user_embeddings(profiles: Path | None, missing: str, user_ids: list[str]):
    """h_u (U, D) of ``user_ids`` from a ProfileSet, by user id (exit 2 naming what is wrong)."""
    import torch

    from generative.conditioning import MISSING_POLICIES, align_embeddings
    from uscope.data import DataError
    from uscope.profile import ProfileSet

    if profiles is None:
        _fail("this model conditions on h_u: pass --profiles PATH (a ProfileSet)")
    if missing not in MISSING_POLICIES:
        _fail(f"--missing-profiles must be one of {', '.join(MISSING_POLICIES)}")
    try:
        h = align_embeddings(ProfileSet.load(profiles), user_ids, missing=missing,
                             source=str(profiles))
    except (DataError, FileNotFoundError) as exc:
        _fail(str(exc))
    return torch.from_numpy(h)
