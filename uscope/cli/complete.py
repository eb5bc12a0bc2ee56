"""`uscope complete`: complete users' behaviour tensors with a trained U-MASK + DiT model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uscope.cli import app


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def complete(
    model: Annotated[Path, typer.Option(help="Directory written by UMaskCompleter.save.")],
    tensors: Annotated[Path, typer.Option(help="Tensors saved by BehaviourTensors.save (.npz).")],
    out: Annotated[Path, typer.Option(help="Output .npz (samples, median, spread, masks).")],
    embeddings: Annotated[Path | None, typer.Option(
        help="(N, D) .npy of user embeddings h_u in the tensors' user order; default: the "
             "generative.standin stand-in of the first half of the slots.")] = None,
    task: Annotated[str, typer.Option(help="short_term, long_term or cold_start.")] = "short_term",
    samples: Annotated[int, typer.Option(help="Samples per user.")] = 8,
    sampler: Annotated[str, typer.Option(help="ddim or ddpm.")] = "ddim",
    steps: Annotated[int, typer.Option(help="Sampling steps (0 = all training steps).")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Complete every user's tensor for TASK; writes samples, their median and spread."""
    import numpy as np

    from generative.completion import UMaskCompleter
    from generative.standin import histogram_embedding
    from uscope.data import BehaviourTensors

    for path, what in ((model / "config.json", "model config"), (tensors, "tensor file")):
        if not path.is_file():
            _fail(f"{what} {path} not found")
    try:
        m = UMaskCompleter.load(model)
        bt = BehaviourTensors.load(tensors)
        if embeddings is not None:
            h = np.load(embeddings).astype(np.float32)
        else:
            h = histogram_embedding(bt.values, bt.channel_groups["app"], bt.values.shape[2] // 2,
                                    dim=m.cfg.umask.user_dim)
            typer.echo("using the stand-in user embedding (generative.standin), not U-SCOPE")
        result = m.complete(bt.values, bt.observed_mask, h, task, n_samples=samples,
                            sampler=sampler, steps=steps or None, seed=seed)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, samples=result.samples.numpy(), median=result.median.numpy(),
                        spread=result.spread.numpy(), evidence_mask=result.evidence_mask.numpy(),
                        target_mask=result.target_mask.numpy(),
                        user_ids=np.array(bt.user_ids), channel_names=np.array(bt.channel_names))
    n_ev = result.evidence_mask.sum((1, 2, 3)).float().mean()
    typer.echo(f"completed {len(bt.user_ids)} users for {task} ({samples} {sampler} samples, "
               f"mean evidence {float(n_ev):.1f} coordinates) -> {out}")
