"""Constrained app-location synthesis (seed paper 000, Sec. 5.2, eq. 25-26, RQ3 / Fig. 5) on a
registered dataset with apps AND places (default: a SIMULATED population; the real netfp data
has no locations). Writes the ``synth`` section of BENCHMARKS.md (another dataset:
``synth-<name>``) and Fig. 5a/5b to benchmarks/figures/ (not with --quick).

1. The sequence LM: recipes/synth_lm.py (TRL SFT + LoRA) fine-tunes SmolLM2-135M for a few
   minutes on the real sequences of the population users (held-out users never seen).
2. Fidelity (eq. 26) of the held-out users' synthetic data vs their real data: tuned LM, untuned
   base, uniform choice over the allowed pairs (no LM), and a resample of real events of the
   same size (the sampling-noise floor).
3. Intent prediction for sparse held-out users (generative.intent baselines) with and without
   synthetic tuning data.
4. Throughput on this CPU: outlines-constrained vs unconstrained decoding of the same model,
   same prompts, side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import NEEDS, add_dataset_args, load_for_benchmark, parse_args, quick_banner, report
from _report import markdown_table
from synth_downstream import held_out_users, sparse_histories, sparse_tune, variants

from generative.intent import IntentDataConfig, ProtocolConfig, build_protocol
from uscope.data import save_events
from uscope.profile import profile_users
from uscope.synth import (
    ExplorationPolicy,
    FreeTextDecoder,
    OutlinesDecoder,
    SynthConfig,
    fidelity,
    generate_user,
    load_synth_lm,
    plan_users,
    synthesize,
)
from uscope.synth.figures import plot_difference_heatmap, plot_scatter
from uscope.synth.serialise import completion_text

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "benchmarks" / "figures"
PAPER = {"source": "paper (real data, Llama-3.1-8B; reference only)", "MAE": 0.0457,
         "RMSE": 0.0543, "R2": 0.9063, "pearson_r": 0.952, "p_value": "< 0.001"}


QUICK = {"users": 10, "days": 2, "held_out": 2, "per_user": 1, "length": 3, "sparse": 3,
         "train_steps": 1, "train_batch": 1, "events_per_example": 4, "throughput_users": 1,
         "throughput_length": 2, "skip_base": True}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--users", type=int, default=40, help="users (simulated: how many)")
    p.add_argument("--days", type=int, default=5, help="days of the simulated population")
    p.add_argument("--held-out", type=int, default=8)
    p.add_argument("--per-user", type=int, default=2, help="K sequences per user")
    p.add_argument("--length", type=int, default=12, help="T' events per sequence")
    p.add_argument("--sparse", type=int, default=10, help="tuning samples per sparse user")
    p.add_argument("--train-steps", type=int, default=16)
    p.add_argument("--train-batch", type=int, default=2)
    p.add_argument("--events-per-example", type=int, default=12)
    p.add_argument("--throughput-users", type=int, default=3)
    p.add_argument("--throughput-length", type=int, default=6)
    p.add_argument("--adapter", type=Path, help="reuse a trained adapter (skip training)")
    p.add_argument("--skip-base", action="store_true", help="no untuned-base comparison")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None,
                   help="default runs/bench_synth (--quick: a temporary folder)")
    add_dataset_args(p, default="simulated")
    args = parse_args(p, argv, quick=QUICK)
    args.workdir = args.workdir or (Path(tempfile.mkdtemp(prefix="bench_synth_")) if args.quick
                                    else REPO / "runs" / "bench_synth")
    return args


class UniformAllowedDecoder:
    """No LM: a uniform draw among the offered pairs (what the constraint alone gives)."""

    constrained = True

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def choose(self, prompts, options):
        return [completion_text(options[int(self.rng.integers(len(options)))]) for _ in prompts]


def train_lm(events: pd.DataFrame, profiles, args, save_steps: int = 4, keep: int = 2) -> dict:
    """Run recipes/synth_lm.py on the population users; wall minutes, examples, losses.
    A checkpoint every ``save_steps`` steps, the last ``keep`` of them kept."""
    out = args.workdir / "adapter"
    events_path = save_events(events, args.workdir / "train_events.parquet")
    profiles_path = profiles.save(args.workdir / "train_profiles.parquet")
    command = [sys.executable, str(REPO / "recipes" / "synth_lm.py"), "--config",
               str(REPO / "recipes" / "smollm2-135m" / "synth" / "config_lora.yaml"),
               "--events", str(events_path), "--profiles", str(profiles_path),
               "--output_dir", str(out), "--max_steps", str(args.train_steps),
               "--per_device_train_batch_size", str(args.train_batch),
               "--events_per_example", str(args.events_per_example),
               "--learning_rate", "1e-3", "--warmup_steps", "2", "--logging_steps", "2",
               "--save_steps", str(save_steps), "--save_total_limit", str(keep),
               "--seed", str(args.seed)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    done = subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True)
    minutes = (time.perf_counter() - start) / 60
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    states = sorted(out.glob("checkpoint-*/trainer_state.json"),
                    key=lambda p: int(p.parent.name.split("-")[1]))
    losses = [e["loss"] for e in json.loads(states[-1].read_text())["log_history"]
              if "loss" in e] if states else []
    said = [line for line in done.stdout.splitlines() if "examples; adapter saved" in line]
    available = int(said[-1].split()[0]) if said else None
    info = {"minutes": minutes, "steps": args.train_steps, "batch": args.train_batch,
            "examples_seen": args.train_steps * args.train_batch,
            "examples_available": available, "events_per_example": args.events_per_example,
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "threads": args.threads}
    (out / "bench_training.json").write_text(json.dumps(info, indent=1))
    return {"adapter": out, **info}


def reused_training(adapter: Path) -> dict:
    """The record ``train_lm`` left beside an adapter trained by an earlier run (minutes None
    when there is none), marked reused."""
    record = adapter / "bench_training.json"
    return {"adapter": adapter, "minutes": None, "reused": True,
            **(json.loads(record.read_text()) if record.exists() else {})}


def timed_synthesis(events, profiles, decoder, config, users):
    start = time.perf_counter()
    result = synthesize(events, profiles, decoder, config, users=users)
    return result, time.perf_counter() - start


def fidelity_rows(real: pd.DataFrame, generated: dict, seconds: dict, seed: int,
                  against: str = "app_category", hour_bin: int = 3) -> tuple:
    """One row per source, then real events resampled to the same size (the noise floor)."""
    rows, results = [], {}
    for name, frame in generated.items():
        results[name] = fidelity(real, frame, against=against, hour_bin=hour_bin)
        rows.append({"source": name, "events": len(frame), "seconds": f"{seconds[name]:.0f}",
                     **results[name].as_dict()})
        rows[-1]["p_value"] = f"{rows[-1]['p_value']:.1e}"
    n = len(next(iter(generated.values())))
    resample = real.sample(n=n, replace=True, random_state=seed)
    results["real resample"] = fidelity(real, resample, against=against, hour_bin=hour_bin)
    rows.append({"source": f"real events resampled (n = {n}; sampling-noise floor)",
                 "events": n, "seconds": "-", **results["real resample"].as_dict()})
    rows[-1]["p_value"] = f"{rows[-1]['p_value']:.1e}"
    return rows, results


def throughput(events, profiles, model, tokenizer, users, args) -> list[dict]:
    """Constrained and free decoding of the same plans, user by user (alternating)."""
    config = SynthConfig(sequences_per_user=args.per_user,
                         events_per_sequence=args.throughput_length, seed=args.seed)
    plans = plan_users(events, profiles, config, users)
    constrained, free = OutlinesDecoder(model, tokenizer), FreeTextDecoder(model, tokenizer)
    totals = {"constrained (outlines)": [0.0, 0, 0, 0.0, 0],
              "unconstrained": [0.0, 0, 0, 0.0, 0]}
    for plan in plans:
        start = time.perf_counter()
        for options in {plan.constraint.allowed, plan.constraint.allowed
                        + plan.constraint.candidates}:
            constrained.generator(options)  # regex index build, timed on its own
        totals["constrained (outlines)"][3] += time.perf_counter() - start
        for name, decoder in (("constrained (outlines)", constrained), ("unconstrained", free)):
            start = time.perf_counter()
            outcome = generate_user(plan, decoder, config)
            totals[name][0] += time.perf_counter() - start
            totals[name][1] += len(outcome.events) + outcome.stats["invalid"]
            totals[name][2] += len(outcome.events)
            totals[name][4] += outcome.stats["malformed"]
    rows = []
    for name, (seconds, attempts, kept, compile_s, malformed) in totals.items():
        rows.append({"decoding": name, "LM calls (events attempted)": attempts,
                     "well-formed lines": f"{1 - malformed / attempts:.2f}",
                     "valid events (offered pair)": kept, "valid share": f"{kept / attempts:.2f}",
                     "decode s": f"{seconds:.1f}", "attempts/s": f"{attempts / seconds:.2f}",
                     "valid events/s": f"{kept / seconds:.2f}",
                     "regex compile s (once per option set)": f"{compile_s:.1f}" if compile_s
                     else "-"})
    return rows


def fmt(rows: list[dict]) -> list[dict]:
    return [{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    loaded = load_for_benchmark(
        args, NEEDS["bench_synth"][0], "bench_synth", quick_users=args.users,
        options={"simulated": {"n_users": args.users, "days": args.days, "seed": args.seed}})
    events = loaded.events
    args.users = events["user_id"].nunique()
    data = build_protocol(events, IntentDataConfig(input_length=10),
                          ProtocolConfig(n_individual=args.held_out, seed=args.seed),
                          source=loaded.label)
    held = held_out_users(data)
    train_events = events[~events["user_id"].isin(held)]
    train_profiles = profile_users(train_events, backend="heuristic")
    if args.adapter is None:
        training = train_lm(train_events, train_profiles, args)
    else:  # an adapter trained by an earlier run of this script: report that training
        training = reused_training(args.adapter)
    print(f"training: {training}", flush=True)

    # 2. fidelity on the held-out users' full histories
    held_events = events[events["user_id"].isin(held)].reset_index(drop=True)
    held_profiles = profile_users(held_events, backend="heuristic")
    config = SynthConfig(sequences_per_user=args.per_user, events_per_sequence=args.length,
                         seed=args.seed, exploration=ExplorationPolicy(mode="profile"))
    tuned_model, tokenizer = load_synth_lm(adapter=training["adapter"])
    generated, seconds = {}, {}
    decoders = {"tuned SmolLM2 + outlines": OutlinesDecoder(tuned_model, tokenizer),
                "no LM: uniform over allowed pairs": UniformAllowedDecoder()}
    if not args.skip_base:
        base_model, base_tokenizer = load_synth_lm()
        decoders["untuned SmolLM2 + outlines"] = OutlinesDecoder(base_model, base_tokenizer)
    reports = {}
    for name, decoder in decoders.items():
        result, seconds[name] = timed_synthesis(events, held_profiles, decoder, config, held)
        generated[name], reports[name] = result.events, result.report
        print(f"fidelity generation {name}: {seconds[name]:.0f}s", flush=True)
    fid_rows, results = fidelity_rows(held_events, generated, seconds, args.seed)
    figures = figure_paths(loaded)
    if not args.quick:
        title = f"{loaded.label}, held-out users, tuned SmolLM2-135M + outlines"
        plot_difference_heatmap(results["tuned SmolLM2 + outlines"], figures[0], title)
        plot_scatter(results["tuned SmolLM2 + outlines"], figures[1], title)
    tuned_report = reports["tuned SmolLM2 + outlines"]

    # 3. intent prediction for sparse users, with and without synthetic tuning data
    sparse = sparse_tune(data, args.sparse)
    sparse_events = sparse_histories(events, data, sparse)
    sparse_profiles = profile_users(sparse_events, backend="heuristic")
    context = pd.concat([train_events, sparse_events], ignore_index=True)  # population pairs
    synthetic = {}
    for name in ("tuned SmolLM2 + outlines", "no LM: uniform over allowed pairs"):
        result, spent = timed_synthesis(context, sparse_profiles, decoders[name], config, held)
        synthetic[f"synthetic ({name})"] = result.events
        print(f"downstream generation {name}: {spent:.0f}s", flush=True)
    down_rows = variants(data, sparse, synthetic)

    # 4. throughput, constrained vs unconstrained, side by side
    speed_rows = throughput(events, held_profiles, tuned_model, tokenizer,
                            held[: args.throughput_users], args)
    total_minutes = (time.perf_counter() - clock) / 60
    report(args, loaded, "synth", "Synthesis: constrained app-location generation",
           body(args, loaded, figures, training, fid_rows, tuned_report, down_rows, speed_rows,
                len(sparse_events), total_minutes))


def figure_paths(loaded) -> tuple[Path, Path]:
    """Fig. 5a / 5b of this dataset (the simulated ones keep their names)."""
    key = loaded.spec.name.replace(":", "_")
    return (FIGURES / f"synth_fig5a_difference_{key}.png",
            FIGURES / f"synth_fig5b_scatter_{key}.png")


def training_text(training: dict) -> str:
    if training["minutes"] is None:
        return f"reused adapter {training['adapter']} (no training record)"
    reused = " (trained by an earlier run of this script, adapter reused)" \
        if training.get("reused") else ""
    return (
        f"{training['minutes']:.1f} min on {training['threads']} CPU thread(s){reused}: "
        f"{training['steps']} steps x batch {training['batch']} = {training['examples_seen']} "
        f"examples seen of {training['examples_available']} available "
        f"({training['events_per_example']} events each)"
        + ("" if training["last_loss"] is None else
           f", loss {training['first_loss']:.3f} (first log) -> {training['last_loss']:.3f} "
           "(last log)"))


def fidelity_summary(rows: list[dict]) -> str:
    mae = {r["source"].split(" (")[0]: r["MAE"] for r in rows}
    tuned = mae["tuned SmolLM2 + outlines"]
    parts = [f"tuned LM MAE {tuned:.4f}"]
    for name in ("untuned SmolLM2 + outlines", "no LM: uniform over allowed pairs"):
        if name in mae:
            verdict = "better than" if tuned < mae[name] else "not better than"
            parts.append(f"{verdict} {name} ({mae[name]:.4f})")
    floor = next(v for k, v in mae.items() if k.startswith("real events resampled"))
    return "; ".join(parts) + f"; sampling-noise floor {floor:.4f}."


def augmentation_summary(rows: list[dict]) -> str:
    prec = {(r["variant"], r["baseline"]): r["Prec_w"] for r in rows}
    tuned = "sparse real + synthetic (tuned SmolLM2 + outlines)"
    deltas = [f"{b} {prec[(tuned, b)] - prec[('sparse real', b)]:+.4f}"
              for (v, b) in prec if v == "sparse real"]
    return "Change in Prec_w from adding the tuned LM's synthetic data: " + ", ".join(deltas) + "."


def data_text(args, loaded) -> str:
    if not loaded.spec.real:
        return (f"All data here is **SIMULATED**: {loaded.label} (`uscope.data.simulate`, "
                f"{args.users} users x {args.days} days, seed {args.seed}); the real netfp data "
                "has no locations.")
    return f"Data: {loaded.label}, {args.users} users (apps and places of the same people)."


def body(args, loaded, figures, training, fid_rows, tuned_report, down_rows, speed_rows,
         n_sparse_events, total_minutes) -> str:
    trained = training_text(training)
    columns = ["source", "events", "seconds", "MAE", "RMSE", "R2", "pearson_r", "p_value",
               "cramers_v_real", "cramers_v_generated", "rows_missing"]
    fid = markdown_table(fmt(fid_rows) + [PAPER], columns)
    metrics = ["Prec_w", "Prec_m", "Rec_m", "NDCG@3"]
    down = markdown_table(fmt(down_rows), ["variant", "baseline", "tuning samples"] + metrics)
    exploratory = int(tuned_report["exploratory"].sum())
    shown = [str(f.relative_to(REPO)) for f in figures]
    return quick_banner(args) + f"""
{data_text(args, loaded)} {args.held_out} users are held out
(the intent protocol's individual users): the sequence LM never sees them.

**Sequence LM** (`recipes/synth_lm.py`, TRL SFT + LoRA r=16 on SmolLM2-135M-Instruct, heuristic
profiles as P_u): {trained}.

**Fidelity (eq. 26, Fig. 5)**: app-category x location-category usage distribution (each
location category's app-category shares) of the held-out users' synthetic events (K =
{args.per_user} sequences x T' = {args.length} events per user, profile-driven exploration:
{exploratory} of {len(tuned_report)} users flagged exploratory, {int(tuned_report['out_of_set'].sum())}
out-of-set events) vs their real events. The resampled-real row is what a perfect generator
would score with this many events (sampling noise alone).

{fid}

{fidelity_summary(fid_rows)}

Figures: `{shown[0]}` (generated - original, |diff| > 0.05 circled), `{shown[1]}`.

**Augmentation for a downstream task**: next-intent prediction (PITuning protocol, Honor
setting, input length 10) for the {args.held_out} held-out users made sparse: only their first
{args.sparse} tuning samples ({n_sparse_events} real events in all) are kept. Synthetic
sequences (K = {args.per_user} x T' = {args.length}) are generated from each sparse history and
its profile and added to that user's tuning data; the test set (the users' real later hours)
is identical in every row and holds no synthetic event (`build_protocol` refuses them).
Prec_w equals accuracy (PITuning eq. 12 as printed).

{down}

{augmentation_summary(down_rows)}

**Throughput on this CPU** ({args.throughput_users} users x K = {args.per_user} x T' =
{args.throughput_length}, tuned model, same prompts, one LM call per event, the two decoders
alternating user by user; the machine is shared, so compare the two rows, not runs):

{markdown_table(speed_rows)}

Whole benchmark: {total_minutes:.1f} min.
"""


if __name__ == "__main__":
    main()
