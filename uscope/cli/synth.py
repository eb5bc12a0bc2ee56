"""`uscope synthesize`: profile-conditioned, constrained app-location synthesis (eq. 25)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uscope.cli import app
from uscope.cli.data import _fail, read_any


@app.command()
def synthesize(
    profiles: Annotated[Path, typer.Option(help="Profile set (parquet) from `uscope profile`.")],
    events: Annotated[Path, typer.Option(help="Real events: parquet table, Tsinghua dir or "
                                              "CSV (app uses, or place check-ins only).")],
    out: Annotated[Path, typer.Option(help="Output parquet of synthetic events (a separate "
                                           "file; every row synthetic=True).")],
    per_user: Annotated[int, typer.Option(help="K: synthetic sequences per user.")] = 1,
    length: Annotated[int, typer.Option(help="T': events per sequence.")] = 24,
    adapter: Annotated[Path | None, typer.Option(help="LoRA adapter from recipes/synth_lm.py.")]
    = None,
    model: Annotated[str | None, typer.Option(help="Base model path or hub id (default: "
                                                   "bundled SmolLM2-135M-Instruct).")] = None,
    budget: Annotated[int, typer.Option(help="Out-of-set pairs allowed per sequence for users "
                                             "whose profile signals exploratory intent.")] = 2,
    exploration: Annotated[str, typer.Option(help="profile | always | never")] = "profile",
    candidates: Annotated[int, typer.Option(help="Out-of-set population pairs offered to "
                                                 "exploratory users.")] = 32,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")]
    = 1.0,
    users: Annotated[str | None, typer.Option(help="Comma-separated user ids (default: all "
                                                   "profiled users).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of times and sampling.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run into --out.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
) -> None:
    """Generate K synthetic sequences per user, constrained to the user's app-place pairs."""
    from tqdm.auto import tqdm

    from uscope.data import DataError
    from uscope.profile import ProfileSet
    from uscope.synth import (
        ExplorationPolicy,
        OutlinesDecoder,
        SynthConfig,
        load_synth_lm,
        run_synthesis_job,
    )

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    bars: list = []

    def start_bar(done: int, total: int):
        bars.append(tqdm(total=total, initial=done, unit="user", disable=not progress,
                         desc="synthesize"))
        return bars[-1].update

    if out.resolve() == events.resolve():
        _fail(f"{out} is the real event file; synthetic events go to a separate file")
    try:
        config = SynthConfig(
            sequences_per_user=per_user, events_per_sequence=length, seed=seed,
            exploration=ExplorationPolicy(budget=budget, mode=exploration,
                                          max_candidates=candidates))
        profile_set = ProfileSet.load(profiles)
        table, _ = read_any(events, None, lenient=False, rejects=None)
        chosen = [u.strip() for u in users.split(",")] if users else None
        lm, tokenizer = load_synth_lm(model, adapter)
        decoder = OutlinesDecoder(lm, tokenizer, temperature=temperature)
        summary = run_synthesis_job(table, profile_set, decoder, out, config, chosen,
                                    resume=resume, real_path=events if events.is_file() else None,
                                    progress=start_bar)
    except (DataError, ValueError, KeyError, FileExistsError, FileNotFoundError,
            ImportError) as exc:
        _fail(str(exc).strip("'\""))
    finally:
        for bar in bars:
            bar.close()
    typer.echo(summary.render())
