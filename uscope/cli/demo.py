"""`uscope demo`: the main job on the embedded default data (a SIMULATED population).

Every stage runs, each for a short budget so the whole job takes a few minutes on a CPU:
simulate -> behaviour tensors -> U-SCOPE profiles -> U-MASK + DiT completion of a hidden window
-> PITuning next-intent prediction -> novelty recommendations. The models are tiny and briefly
trained: the numbers show the flow, not the quality (``BENCHMARKS.md`` has that).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from uscope.cli import app
from uscope.cli.data import describe_tensors

STAGES = 6
KIND_LABELS = {"intent": "app categories", "app": "apps"}


def printable_profile(text: str | None, error: str | None = None) -> str:
    """The profile as the demo prints it: whole sentences only.

    A text cut by the token budget in mid-sentence is shown up to its last sentence end (the
    stored profile is left as written); a text without any sentence end, or no text, is named
    as such rather than printed as a fragment.
    """
    from uscope.profile.faithfulness import end_at_sentence

    text = text.strip() if isinstance(text, str) else ""
    if not text:
        if isinstance(error, str) and error.strip():
            return f"[no profile: {error.strip().rstrip('.')}]."
        return "[no profile was written]."
    whole = end_at_sentence(text)
    if whole:
        return whole
    return "[the profile holds no complete sentence within the token budget]."


def no_novel_reason(used: set[str], catalogue: list[str], kind: str) -> str:
    """Why a user gets no novel item of ``kind``, from what they used and what exists."""
    plural = KIND_LABELS.get(kind, f"{kind}s")
    unused = [item for item in catalogue if item not in used]
    if not unused:
        return (f"none: this user already used every one of the {len(catalogue)} {plural} "
                "in the data")
    shown = ", ".join(unused[:3]) + (", ..." if len(unused) > 3 else "")
    return (f"none: the {len(unused)} {plural} this user has not used ({shown}) are used by "
            f"none of the users the recommender weighs for them")


def _stage(n: int, text: str) -> float:
    typer.echo(f"[{n}/{STAGES}] {text}")
    return time.perf_counter()


def _took(start: float) -> str:
    return f"{time.perf_counter() - start:.0f} s"


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Working directory for the run.")] = Path("runs/demo"),
    users: Annotated[int, typer.Option(help="Simulated users.")] = 12,
    days: Annotated[int, typer.Option(help="Days per user.")] = 7,
    seed: Annotated[int, typer.Option(help="Simulation and training seed.")] = 0,
    backend: Annotated[str, typer.Option(help="Profile writer: transformers (the bundled "
                                                "SmolLM2) or heuristic.")] = "transformers",
    show: Annotated[int, typer.Option(help="How many users to show at each stage.")] = 3,
    max_new_tokens: Annotated[int, typer.Option(help="Profile length budget (tokens).")] = 160,
    complete_steps: Annotated[int, typer.Option(help="U-MASK + DiT training steps.")] = 300,
    intent_steps: Annotated[int, typer.Option(help="PITuning teacher and student training "
                                                     "steps (each).")] = 100,
) -> None:
    """Simulate a population, build behaviour tensors, profile every user with the default LLM,
    complete a hidden window of their behaviour, predict their next intents and recommend what
    they have not used yet."""
    from uscope.data import TensorConfig, build_tensors, load_events, save_events, simulate
    from uscope.profile import GenerationConfig, profile_users

    if users < 2:
        raise typer.BadParameter("the demo needs at least 2 users", param_hint="--users")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()   # the bundled models load quietly
    t0 = time.perf_counter()
    start = _stage(1, f"simulating {users} users x {days} days (SIMULATED data, seed {seed})")
    population = simulate(n_users=users, days=days, seed=seed, out_dir=out / "population")
    events_path = save_events(population.events, out / "events.parquet")
    events = load_events(events_path)
    typer.echo(f"      {len(events)} events, {events['app'].nunique()} apps, "
               f"{events['location_id'].nunique()} base stations in "
               f"{events['location_category'].nunique()} location categories ({_took(start)})")

    start = _stage(2, "behaviour tensors (15-minute slots, 192 slots)")
    batch = build_tensors(events, TensorConfig())
    batch.save(out / "tensors.npz")
    typer.echo(f"      {describe_tensors(batch)} ({_took(start)})")

    start = _stage(3, f"U-SCOPE profiles ({backend} backend, then all-MiniLM-L6-v2 embeddings)")
    with typer.progressbar(length=events["user_id"].nunique(), label="      profiling") as bar:
        profiles = profile_users(events, backend=backend, on_batch=bar.update,
                                 generation=GenerationConfig(max_new_tokens=max_new_tokens))
    profiles.save(out / "profiles.parquet")
    typer.echo(f"      {profiles.summary()} ({_took(start)})")
    shown = profiles.user_ids[:max(show, 0)]
    frame = profiles.frame.set_index("user_id")
    for user_id in shown:
        row = frame.loc[user_id]
        typer.echo(f"\n  user {user_id} ({population.archetypes[user_id]}, the simulation's "
                   f"ground truth):\n  profile: {printable_profile(row['profile'], row['error'])}")
    typer.echo("")

    _complete_stage(events, profiles, shown, days=days, seed=seed, steps=complete_steps)
    _intent_stage(events, shown, seed=seed, steps=intent_steps)
    _recommend_stage(events, profiles, shown)
    typer.echo(f"\ndone in {time.perf_counter() - t0:.0f} s; outputs in {out} (events.parquet, "
               "tensors.npz, profiles.parquet)")


def _complete_stage(events, profiles, shown: list[str], *, days: int, seed: int,
                    steps: int) -> None:
    """Train a tiny U-MASK + DiT on hourly tensors and complete the shown users' last hours."""
    import torch

    from generative.baselines import historical_average, population_mean
    from generative.completion import UMaskCompleter
    from generative.conditioning import align_embeddings
    from generative.config import DIT_PRESETS
    from generative.evaluate import group_errors
    from generative.tasks import task_masks
    from generative.train import TrainConfig, fit
    from uscope.data import TensorConfig, build_tensors

    n_days = max(1, min(days, 2))
    start = _stage(4, f"completion (U-MASK + DiT): hourly tensors of the first {n_days} "
                      f"day(s), the last hours hidden (short-term task)")
    bt = build_tensors(events, TensorConfig(slot_minutes=60, n_slots=24 * n_days,
                                            observed="all"))   # the simulator logs every use
    values, observed = bt.as_torch()
    h = torch.from_numpy(align_embeddings(profiles, bt.user_ids, missing="mean"))
    test = [bt.user_ids.index(u) for u in shown if u in bt.user_ids]
    train = [i for i in range(len(bt.user_ids)) if i not in test]
    held_out = len(train) >= 2
    if not held_out:   # too few users to hold the shown ones out of training
        train = list(range(len(bt.user_ids)))
    _, c, t, height, width = bt.shape
    torch.manual_seed(seed)
    config = DIT_PRESETS["umask-tiny"](channels=c, n_slots=t, height=height, width=width,
                                       user_dim=h.shape[1], patch=(2, 1, 1), train_steps=50)
    config.umask.set_centred(["short_term"])   # complete deviations from the evidence level
    model = UMaskCompleter(config)
    fit(model, values[train], observed[train], h[train],
        TrainConfig(steps=steps, batch_size=8, lr=3e-3, seed=seed, log_every=max(steps, 1)))
    model.set_reference(h[train])
    typer.echo(f"      umask-tiny ({sum(p.numel() for p in model.parameters())} parameters) "
               f"trained {steps} steps on {len(train)} users "
               + ("(the shown users held out)" if held_out else "(the shown users included: "
                  "too few users to hold them out)") + f", h_u from their profiles ({_took(start)})")
    if not test:
        return
    task = model.cfg.umask.tasks[model.cfg.umask.task_index("short_term")]
    ids = torch.full((len(test),), model.cfg.umask.task_index("short_term"), dtype=torch.long)
    v, o = values[test], observed[test]
    result = model.complete(v, o, h[test], "short_term", n_samples=8, steps=10, seed=seed)
    masks = task_masks(model.cfg.umask.tasks, ids, o)
    baseline = historical_average(v, masks.candidates,
                                  population_mean(values[train], observed[train]))
    groups = {"app": bt.channel_groups.get("app") or list(range(c))}
    typer.echo(f"      RMSE over the app channels of the {task.horizon} hidden hours (mean of 8 "
               "DDIM samples; SIMULATED data, a tiny model and budget):")
    for i, user_id in enumerate(bt.user_ids[j] for j in test):
        one = slice(i, i + 1)
        ours = group_errors(result.samples.mean(0)[one], v[one], result.target_mask[one], groups)
        ha = group_errors(baseline[one], v[one], result.target_mask[one], groups)
        if "app" not in ours:
            typer.echo(f"  user {user_id}: no observed slot in the hidden window to score")
            continue
        typer.echo(f"  user {user_id}: U-MASK + DiT {ours['app']['rmse']:.4f}, historical "
                   f"average {ha['app']['rmse']:.4f}")
    typer.echo("      (with this few users and steps expect about the historical average; "
               "BENCHMARKS.md 'U-MASK + DiT completion' measures it on 400 simulated and 1,203 "
               "real users)")
    typer.echo("")


def _intent_stage(events, shown: list[str], *, seed: int, steps: int) -> None:
    """PITuning: population teacher (first SmolLM2 blocks) -> distilled student -> per-user
    adapters (adaptive unlearning) -> each shown user's next intents."""
    import torch

    from generative.intent import (
        BackboneConfig,
        IndividualConfig,
        IntentPredictor,
        IntentVocab,
        TrainConfig,
        build_samples,
        build_sequences,
        distill,
        intent_setting,
        load_backbone,
        output_distribution,
        predict_logits,
        train_population,
        tune_user,
    )
    from generative.intent.data import latest_windows
    from generative.intent.individual import readout_with
    from generative.intent.losses import intent_distribution

    start = _stage(5, "next intents (PITuning): population teacher, distilled student, "
                      "a per-user adapter")
    config = intent_setting(events, input_length=8)
    vocab = IntentVocab.fit(events, config)
    seqs = build_sequences(events, config, vocab, source="simulated events")
    samples = build_samples(seqs, config)
    options = {"embed_dim": 16, "attention_dim": 16, "mlp_hidden": 64, "dropout": 0.0,
               "query_time": True}
    torch.manual_seed(seed)
    teacher = IntentPredictor.from_vocab(
        vocab, load_backbone(BackboneConfig(kind="smollm2", n_layers=2, seed=seed)), **options)
    train_population(teacher, samples, TrainConfig(steps=steps, batch_size=32, lr=3e-3,
                                                   backbone_lr=1e-4, seed=seed,
                                                   log_every=max(steps, 1)))
    student = IntentPredictor.from_vocab(vocab, load_backbone(BackboneConfig(
        kind="gpt2", n_layer=1, n_embd=32, n_head=2, max_positions=16, seed=seed)), **options)
    distill(student, teacher, samples, TrainConfig(steps=steps, batch_size=32, lr=3e-3,
                                                   backbone_lr=3e-3, seed=seed,
                                                   log_every=max(steps, 1)))
    p_out = output_distribution(predict_logits(teacher, samples))
    p_pop = intent_distribution(samples.target, vocab.n_intents)
    typer.echo(f"      teacher: {teacher.backbone_label}; student: {student.backbone_label}; "
               f"{steps} steps each on {len(samples)} windows of {config.input_length} "
               f"behaviours from {len(seqs.user_ids)} users ({_took(start)})")
    windows = latest_windows(seqs, config)
    student.eval()
    for user_id in shown:
        if user_id not in seqs.user_ids:
            typer.echo(f"  user {user_id}: no app use to predict from")
            continue
        k = seqs.user_ids.index(user_id)
        adapter = tune_user(student, samples.subset(samples.user == k), p_out, p_pop,
                            IndividualConfig(unlearn_steps=3, finetune_steps=20, seed=seed))
        window = windows.subset(torch.tensor([k]))
        with torch.no_grad():
            logits = readout_with(student, adapter.tensors, student.encode(**window.inputs()),
                                  window.length)[0]
        probs = torch.softmax(logits, -1)
        top = torch.topk(probs, min(3, len(probs)))
        ranked = ", ".join(f"{vocab.intents[j]} ({float(p):.2f})"
                           for p, j in zip(top.values, top.indices, strict=True))
        last = vocab.intents[int(seqs.intent[seqs.user_slice(k)][-1])]
        typer.echo(f"  user {user_id}: next {ranked}; last used: {last}")
    typer.echo("")


def _recommend_stage(events, profiles, shown: list[str]) -> None:
    """Novel app categories and apps from similar users; a reason instead of an empty list."""
    from uscope.data.items import item_column, used_items
    from uscope.recommend import Recommender

    start = _stage(6, "recommendations: app categories and apps the user has not used, "
                      "from similar users (hybrid strategy)")
    recommender = Recommender(profiles, events)
    typer.echo(f"      fitted on {len(recommender.index.user_ids)} profiled users "
               f"({_took(start)})")
    by_user = events.groupby("user_id")
    category = events.dropna(subset=["app"]).drop_duplicates("app").set_index("app")[
        "app_category"].to_dict()
    for user_id in shown:
        if user_id not in recommender.index.user_ids:
            typer.echo(f"  user {user_id}: not recommended for (no profile)")
            continue
        own = by_user.get_group(user_id)
        typer.echo(f"  user {user_id}:")
        for kind in ("intent", "app"):
            picks = recommender.recommend(user_id, kind=kind, k=3)
            catalogue = [str(item) for item in recommender.index.matrix(kind).items]
            names = [f"{p.item} ({category[p.item]})" if kind == "app" and p.item in category
                     else p.item for p in picks]
            shown_picks = (", ".join(names) if picks else
                           no_novel_reason(used_items(own, kind, item_column(kind, events)),
                                           catalogue, kind))
            typer.echo(f"    new {KIND_LABELS[kind]} to try: {shown_picks}")
