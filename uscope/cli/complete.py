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
    profiles: Annotated[Path | None, typer.Option(
        help="ProfileSet parquet (uscope profile): h_u of each user, matched to the tensors' "
             "users by user id.")] = None,
    missing_profiles: Annotated[str, typer.Option(
        help="Users of the tensors without a profile: 'error' (name them and stop) or "
             "'mean' (give them the mean h_u of the profiled users).")] = "error",
    embeddings: Annotated[Path | None, typer.Option(
        help="(N, D) .npy of user embeddings h_u in the tensors' user order; default (no "
             "--profiles either): the generative.standin stand-in of the first half of the "
             "slots.")] = None,
    task: Annotated[str, typer.Option(help="short_term, long_term or cold_start.")] = "short_term",
    samples: Annotated[int, typer.Option(help="Samples per user.")] = 8,
    sampler: Annotated[str, typer.Option(help="ddim or ddpm.")] = "ddim",
    steps: Annotated[int, typer.Option(help="Sampling steps (0 = all training steps).")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Complete every user's tensor for TASK; writes samples, their median and spread."""
    from generative.completion import UMaskCompleter
    from generative.conditioning import MISSING_POLICIES
    from uscope.data import BehaviourTensors, DataError

    for path, what in ((model / "config.json", "model config"), (tensors, "tensor file"),
                       (profiles, "profile set"), (embeddings, "embedding file")):
        if path is not None and not path.is_file():
            _fail(f"{what} {path} not found")
    if profiles is not None and embeddings is not None:
        _fail("give --profiles or --embeddings, not both")
    if missing_profiles not in MISSING_POLICIES:
        _fail(f"--missing-profiles must be one of {', '.join(MISSING_POLICIES)}")
    try:
        m = UMaskCompleter.load(model)
        bt = BehaviourTensors.load(tensors)
        h = _user_embeddings(m, bt, profiles, missing_profiles, embeddings)
        result = m.complete(bt.values, bt.observed_mask, h, task, n_samples=samples,
                            sampler=sampler, steps=steps or None, seed=seed)
    except DataError as exc:
        _fail(str(exc))
    except (ValueError, KeyError, FileNotFoundError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, samples=result.samples.numpy(), median=result.median.numpy(),
                        spread=result.spread.numpy(), evidence_mask=result.evidence_mask.numpy(),
                        target_mask=result.target_mask.numpy(),
                        user_ids=np.array(bt.user_ids), channel_names=np.array(bt.channel_names))
    n_ev = result.evidence_mask.sum((1, 2, 3)).float().mean()
    typer.echo(f"completed {len(bt.user_ids)} users for {task} ({samples} {sampler} samples, "
               f"mean evidence {float(n_ev):.1f} coordinates) -> {out}")


def _user_embeddings(model, bt, profiles: Path | None, missing: str, embeddings: Path | None):
    """h_u (N, D) in the tensors' user order: from a ProfileSet by user id, a bare .npy, or the
    stand-in."""
    import numpy as np

    if profiles is not None:
        from generative.conditioning import align_embeddings, missing_users
        from uscope.profile import ProfileSet

        profile_set = ProfileSet.load(profiles)
        h = align_embeddings(profile_set, bt.user_ids, missing=missing, source=str(profiles))
        filled = missing_users(profile_set, bt.user_ids)
        typer.echo(f"h_u of {len(bt.user_ids) - len(filled)} users from {profiles}"
                   + (f"; {len(filled)} without a profile get the mean h_u" if filled else ""))
        return h
    if embeddings is not None:
        h = np.load(embeddings).astype(np.float32)
        if h.ndim != 2 or h.shape[0] != len(bt.user_ids):
            raise ValueError(f"{embeddings} holds {h.shape}, expected ({len(bt.user_ids)}, D): "
                             "one row per user of the tensors, in their order")
        return h
    from generative.standin import histogram_embedding

    channels = bt.channel_groups.get("app") or list(range(bt.values.shape[1]))
    typer.echo("using the stand-in user embedding (generative.standin), not U-SCOPE")
    return histogram_embedding(bt.values, channels, bt.values.shape[2] // 2,
                               dim=model.cfg.umask.user_dim)
