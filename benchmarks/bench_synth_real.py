"""Constrained synthesis on real pairs over months (issue 19; seed paper 000, eq. 25-26, Fig. 5).
Writes the ``synth-real`` section of BENCHMARKS.md (another dataset: ``synth-real-<name>``) and
Fig. 5a/5b of the test users to benchmarks/figures/.

Default data: Foursquare NYC, place check-ins only, so the generated "pair" is a venue (app
"-") at a time drawn from the user's history, and fidelity (eq. 26) is measured on the
place-category x hour-of-day distribution. A dataset with apps is measured on both the
app-category x place-category and the place-category x hour distributions.

``--split users`` (default): users split once (seeded): test users (never seen by the LM, used
once, at the end), validation users (they choose the training checkpoint), training users (the
LM's SFT data, recipes/synth_lm.py); a user's whole history is H_u and the real reference.
``--split time`` (data with too few people, StudentLife: two students have apps and places):
each user's first 60% of events are H_u and the LM's data, the next 20% validate, the last 20%
test. Places without a category (StudentLife has no POI data) are their own category.
Rows, same users, plans and event counts:
the tuned LM + outlines at the validation-chosen checkpoint, the untuned LM + outlines, no LM
(uniform among allowed pairs), no LM (the user's own pair frequencies, time ignored), and real
events resampled to the same size (the sampling-noise floor).
The test generations are repeated over ``--generation-seeds`` seeds (3 by default) with the same
LM, split and checkpoint: each seed draws new times from the users' (day, hour) cells and new
decoding samples; the bar is counted over the seeds.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import NEEDS, add_dataset_args, load_for_benchmark, parse_args, report
from _synth_real_report import BASE, OWN, TUNED, UNIFORM, body
from bench_synth import (
    REPO,
    UniformAllowedDecoder,
    fidelity_rows,
    reused_training,
    timed_synthesis,
    train_lm,
)

from uscope.data.schema import DataError, has_apps
from uscope.profile import profile_users
from uscope.synth import (
    ExplorationPolicy,
    OutlinesDecoder,
    SynthConfig,
    UserTables,
    fidelity,
    load_synth_lm,
)
from uscope.synth.figures import plot_difference_heatmap, plot_scatter
from uscope.synth.pairs import (
    allowed_pairs,
    exploration_candidates,
    pair_counts,
    population_pairs,
    synthesis_input,
)
from uscope.synth.serialise import completion_text

FIGURES = REPO / "benchmarks" / "figures"
QUICK = {"generation_seeds": 2, "test_users": 2, "valid_users": 2, "max_users": 12,
         "per_user": 1, "length": 3, "train_steps": 2, "checkpoint_every": 1, "train_batch": 1,
         "events_per_example": 4, "skip_base": True}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--split", choices=["users", "time"], default="users")
    p.add_argument("--test-users", type=int, default=16)
    p.add_argument("--valid-users", type=int, default=8)
    p.add_argument("--per-user", type=int, default=2, help="K sequences per user")
    p.add_argument("--length", type=int, default=16, help="T' events per sequence")
    p.add_argument("--train-steps", type=int, default=48)
    p.add_argument("--checkpoint-every", type=int, default=16,
                   help="validation compares the checkpoints at these step multiples")
    p.add_argument("--train-batch", type=int, default=2)
    p.add_argument("--events-per-example", type=int, default=12)
    p.add_argument("--hour-bin", type=int, default=3, help="hours per bin of the hour axis")
    p.add_argument("--skip-base", action="store_true", help="no untuned-base row")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--generation-seeds", type=int, default=3,
                   help="test generations repeated with seeds seed, seed+1, ... (the split, "
                        "training and checkpoint stay those of --seed)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="default runs/bench_synth_real/<dataset>-<split>-seed<S>-steps<N> "
                        "(--quick: a temporary folder); a rerun resumes training there")
    add_dataset_args(p, default="foursquare-nyc")
    args = parse_args(p, argv, quick=QUICK)
    if args.generation_seeds < 1:
        p.error(f"--generation-seeds must be at least 1, got {args.generation_seeds}")
    if args.workdir is None:
        args.workdir = Path(tempfile.mkdtemp(prefix="bench_synth_real_")) if args.quick \
            else REPO / "runs" / "bench_synth_real" / \
            f"{args.dataset}-{args.split}-seed{args.seed}-steps{args.train_steps}"
    return args


class UserFrequencyDecoder(UniformAllowedDecoder):
    """No LM: each offered pair drawn in proportion to its count in the user's own history
    (time and context ignored); pairs the user never produced (exploration) weigh 1."""

    def __init__(self, counts: dict):
        self.counts = counts

    def choose(self, prompts, options):
        weights = np.array([self.counts.get(p, 0) for p in options], dtype=float)
        weights = np.where(weights > 0, weights, 1.0)
        picks = self.rng.choice(len(options), size=len(prompts), p=weights / weights.sum())
        return [completion_text(options[int(i)]) for i in picks]


@dataclass
class Split:
    """H_u of every user (synthesis input, population pairs, profiles), the LM's training
    events, and the users and real events that validate and test."""

    history: pd.DataFrame
    train: pd.DataFrame
    valid_users: list[str]
    valid_real: pd.DataFrame
    test_users: list[str]
    test_real: pd.DataFrame
    text: str


def split_users(events: pd.DataFrame, n_test: int, n_valid: int, seed: int) -> Split:
    """Disjoint test / validation / training users, a seeded permutation of the user ids."""
    users = np.array(sorted(events["user_id"].unique()))
    if len(users) < n_test + n_valid + 2:
        raise SystemExit(f"{len(users)} users: too few for {n_test} test and {n_valid} "
                         "validation users and a training population (try --split time)")
    order = np.random.default_rng(seed).permutation(users)
    test, valid, train = (sorted(order[:n_test]), sorted(order[n_test:n_test + n_valid]),
                          sorted(order[n_test + n_valid:]))
    part = {name: events[events["user_id"].isin(ids)] for name, ids in
            (("test", test), ("valid", valid), ("train", train))}
    text = (f"users split once (seed {seed}): {len(test)} test users (used once, for the tables "
            f"below), {len(valid)} validation users (choose the checkpoint), {len(train)} "
            "training users (the LM's data). A test user's whole history is H_u (allowed pairs, "
            "the (day, hour) cells the generation times are drawn from) and also the real "
            "reference: the reference is in-sample for every row")
    return Split(events, part["train"], valid, part["valid"], test, part["test"], text)


def split_time(events: pd.DataFrame, fractions: tuple[float, float] = (0.6, 0.8)) -> Split:
    """Each user's events in time order: the first 60% are H_u (and the LM's data), the next
    20% validate, the last 20% test."""
    events = events.sort_values(["user_id", "timestamp"], kind="stable")
    rank = events.groupby("user_id").cumcount() / events.groupby("user_id")["user_id"]\
        .transform("size")
    history = events[rank < fractions[0]].reset_index(drop=True)
    valid = events[(rank >= fractions[0]) & (rank < fractions[1])]
    test = events[rank >= fractions[1]]
    users = set(history["user_id"])
    valid_users = sorted(users & set(valid["user_id"]))
    test_users = sorted(users & set(test["user_id"]))
    text = (f"per-user chronological split (each user's own events in time order, not one "
            f"calendar cut) of {len(users)} users: the first 60% are H_u and the LM's data, the "
            "next 20% validate (choose the checkpoint), the last 20% test (used once, for the "
            "tables below)")
    return Split(history, history, valid_users, valid[valid["user_id"].isin(valid_users)],
                 test_users, test[test["user_id"].isin(test_users)], text)


def with_place_categories(events: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Places without a category (no POI data) become their own category."""
    missing = events["location_id"].notna() & events["location_category"].isna()
    if not missing.any():
        return events, False
    events = events.copy()
    events["location_category"] = events["location_category"].astype("string")
    events.loc[missing, "location_category"] = events.loc[missing, "location_id"]
    return events, True


def generate(events, profiles, decoder, config, users) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """(events, per-user stats, seconds) of one synthesis, the shape ``cached`` keeps."""
    result, seconds = timed_synthesis(events, profiles, decoder, config, users)
    return result.events, result.report, seconds


def cached(path: Path, run) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """``run()``'s (events, stats, seconds), kept under ``path`` (two parquet files and a JSON
    written last): a run killed mid-way resumes from the rows it has finished."""
    files = {name: Path(f"{path}.{name}") for name in ("events.parquet", "stats.parquet", "json")}
    if files["json"].exists():
        seconds = json.loads(files["json"].read_text())["seconds"]
        return (pd.read_parquet(files["events.parquet"]), pd.read_parquet(files["stats.parquet"]),
                seconds)
    frame, stats, seconds = run()
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(files["events.parquet"])
    stats.to_parquet(files["stats.parquet"])
    files["json"].write_text(json.dumps({"seconds": seconds}))
    return frame, stats, seconds


def own_frequencies(events, profiles, config, users) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """The user-frequency anchor, one decoder (the user's own counts) per user."""
    frames, reports, seconds = [], [], 0.0
    for user in users:
        counts = pair_counts(events[events["user_id"] == user])
        frame, stats, spent = generate(events, profiles, UserFrequencyDecoder(counts), config,
                                       [user])
        frames.append(frame), reports.append(stats)
        seconds += spent
    return pd.concat(frames, ignore_index=True), pd.concat(reports, ignore_index=True), seconds


def constraint_audit(events: pd.DataFrame, generated: pd.DataFrame, stats: pd.DataFrame,
                     sequences: int, max_candidates: int) -> dict:
    """Recount, from the real histories, the generated pairs outside each user's H_u: each must
    be one of the user's exploration candidates (the most frequent real population pairs
    outside H_u), and a user's total at most K x its exploratory budget (the per-sequence
    bound is the decoder's ``BudgetCounter``)."""
    population = population_pairs(events)
    outside, unoffered, over = 0, 0, []
    budgets = dict(zip(stats["user_id"].astype(str), stats["budget"]))
    for user, frame in generated.groupby("user_id"):
        allowed = allowed_pairs(events[events["user_id"] == user])
        offered = set(exploration_candidates(allowed, population, max_candidates))
        extra = [p for p in pair_counts(frame).elements() if p not in allowed]
        outside += len(extra)
        unoffered += sum(p not in offered for p in extra)
        if len(extra) > sequences * budgets[str(user)]:
            over.append(str(user))
    return {"events": len(generated), "outside H_u": outside,
            "not an offered candidate": unoffered, "users over K x budget": len(over)}


def bootstrap_lead(real: pd.DataFrame, generated: dict, rival: str, axis: str, hour_bin: int,
                   draws: int = 1000, seed: int = 0) -> tuple[float, float, int]:
    """95% percentile interval of MAE(rival) - MAE(tuned LM) over the test users resampled
    with replacement (each draw: the drawn users' real and generated events, scored as
    ``fidelity`` scores them, from per-user tables); draws ``fidelity`` refuses (the two sides
    share no place category; on the app axis, a side without app uses) are skipped and
    counted."""
    users = sorted(real["user_id"].unique())
    tables = UserTables({"real": real, TUNED: generated[TUNED], rival: generated[rival]},
                        against=axis, hour_bin=hour_bin)
    rng = np.random.default_rng(seed)
    leads, skipped = [], 0
    for _ in range(draws):
        weights = tables.weights(rng.choice(users, size=len(users)))
        try:
            leads.append(tables.mae("real", rival, weights) - tables.mae("real", TUNED, weights))
        except DataError:
            skipped += 1
    low, high = np.percentile(leads, [2.5, 97.5])
    return float(low), float(high), skipped


def lead_rows(real, generated, axis, hour_bin, seed, draws: int = 1000) -> list[dict]:
    """The tuned LM's MAE lead over every other generated row, with its interval."""
    rows = []
    for rival in generated:
        if rival == TUNED:
            continue
        lead = fidelity(real, generated[rival], against=axis, hour_bin=hour_bin).mae \
            - fidelity(real, generated[TUNED], against=axis, hour_bin=hour_bin).mae
        low, high, skipped = bootstrap_lead(real, generated, rival, axis, hour_bin, draws, seed)
        rows.append({"rival": rival, "lead": lead, "low": low, "high": high,
                     "skipped": skipped})
    return rows


def axes_of(events: pd.DataFrame) -> list[str]:
    return ["app_category", "hour"] if has_apps(events) else ["hour"]


def cache_path(args, key: str) -> Path:
    """Where one generation is kept: the workdir names the data, split, seed and training."""
    name = "".join(c if c.isalnum() or c in "-." else "_" for c in key)
    return args.workdir / "generated" / f"{name}-K{args.per_user}-T{args.length}"


def generation_key(name: str, args, generation_seed: int) -> str:
    """Cache key of a test generation; the first seed keeps the key of single-seed runs."""
    extra = "" if generation_seed == args.seed else f"-gen{generation_seed}"
    return f"test-{name}{extra}"


def generations_for_seed(history, profiles, decoders: dict, config: SynthConfig, users, args
                     ) -> tuple[dict, dict, list[dict]]:
    """Every row's generation for the test users at ``config.seed``: (events by row, seconds
    by row, the constraint audit of each row), each generation cached."""
    generated, seconds, audits = {}, {}, []
    runs = {name: (lambda m=make: generate(history, profiles, m(), config, users))
            for name, make in decoders.items()}
    runs[OWN] = lambda: own_frequencies(history, profiles, config, users)
    for name, run in runs.items():
        frame, stats, seconds[name] = cached(
            cache_path(args, generation_key(name, args, config.seed)), run)
        generated[name] = frame
        audits.append({"source": name, "generation seed": config.seed,
                       **constraint_audit(history, frame, stats, args.per_user,
                                          config.exploration.max_candidates)})
        print(f"test generation {name} (seed {config.seed}): {seconds[name]:.0f}s", flush=True)
    return generated, seconds, audits


def seed_rows(real: pd.DataFrame, by_seed: dict[int, dict], axis: str, hour_bin: int
              ) -> list[dict]:
    """MAE and Pearson r of every row under each generation seed, with their mean and sd."""
    rows = []
    for name in next(iter(by_seed.values())):
        scores = [fidelity(real, generated[name], against=axis, hour_bin=hour_bin)
                  for generated in by_seed.values()]
        maes, rs = [f.mae for f in scores], [f.pearson_r for f in scores]
        rows.append({"source": name, **{f"MAE seed {s}": m for s, m in zip(by_seed, maes)},
                     "MAE mean": np.mean(maes), "MAE sd": np.std(maes, ddof=1)
                     if len(maes) > 1 else 0.0, "r mean": np.mean(rs),
                     "_maes": maes, "_rs": rs})
    return rows


def trained(split: Split, profiles, args) -> dict:
    """The LM of this workdir: trained by an earlier run when its last checkpoint and record
    exist (reused, said so in the report), else trained now."""
    adapter = args.workdir / "adapter"
    if (adapter / "bench_training.json").exists() and \
            (adapter / f"checkpoint-{args.train_steps}").exists():
        return reused_training(adapter)
    return train_lm(split.train, profiles, args, save_steps=args.checkpoint_every,
                    keep=args.train_steps // args.checkpoint_every + 1)


def validate(split: Split, profiles, checkpoints, config, args) -> tuple[list[dict], Path]:
    """Fidelity (MAE over the hour axis, and the app axis where there is one) of each
    checkpoint on the validation users; the lowest mean MAE wins."""
    rows, best = [], None
    for step, path in checkpoints:
        frame, _, seconds = cached(
            cache_path(args, f"valid-step{step}"),
            lambda p=path: generate(split.history, profiles,
                                    OutlinesDecoder(*load_synth_lm(adapter=p)), config,
                                    split.valid_users))
        maes = {a: fidelity(split.valid_real, frame, against=a, hour_bin=args.hour_bin).mae
                for a in axes_of(split.history)}
        score = float(np.mean(list(maes.values())))
        rows.append({"checkpoint (training steps)": step, **{f"MAE ({a})": v for a, v in
                                                             maes.items()},
                     "mean MAE": score, "seconds": f"{seconds:.0f}"})
        if best is None or score < best[0]:
            best = (score, step, path)
        print(f"validation step {step}: {maes} ({seconds:.0f}s)", flush=True)
    for row in rows:
        row["chosen"] = "yes" if row["checkpoint (training steps)"] == best[1] else ""
    return rows, best[2]


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    loaded = load_for_benchmark(args, NEEDS["bench_synth_real"][0], "bench_synth_real",
                                quick_users=args.max_users)
    events, own_categories = with_place_categories(loaded.events)
    events, _ = synthesis_input(events, loaded.label, "synthesis benchmark")
    events["user_id"] = events["user_id"].astype(str)
    split = split_users(events, args.test_users, args.valid_users, args.seed) \
        if args.split == "users" else split_time(events)
    history = split.history
    profiles = profile_users(history, backend="heuristic")
    training = trained(split, profiles, args)
    checkpoints = sorted(((int(p.name.split("-")[1]), p) for p in
                          (args.workdir / "adapter").glob("checkpoint-*")), key=lambda c: c[0])
    config = SynthConfig(sequences_per_user=args.per_user, events_per_sequence=args.length,
                         seed=args.seed, exploration=ExplorationPolicy(mode="profile"))
    valid_rows, chosen = validate(split, profiles, checkpoints, config, args)

    models = {TUNED: chosen} | ({} if args.skip_base else {BASE: None})
    decoders = {name: functools.cache(lambda a=adapter: OutlinesDecoder(*load_synth_lm(
        adapter=a))) for name, adapter in models.items()} | {UNIFORM: UniformAllowedDecoder}
    # each LM is loaded once for all seeds: a decoder reseeds itself for every user's plan
    by_seed, seconds, audits = {}, {}, []
    for generation_seed in range(args.seed, args.seed + args.generation_seeds):
        by_seed[generation_seed], seconds[generation_seed], seed_audits = generations_for_seed(
            history, profiles, decoders, replace(config, seed=generation_seed),
            split.test_users, args)
        audits += seed_audits
    generated = by_seed[args.seed]  # the first seed's generations fill the main tables

    tables, figures = {}, []
    for axis in axes_of(history):
        rows, results = fidelity_rows(split.test_real, generated, seconds[args.seed], args.seed,
                                      axis, args.hour_bin)
        tables[axis] = (rows, lead_rows(split.test_real, generated, axis, args.hour_bin,
                                        args.seed),
                        seed_rows(split.test_real, by_seed, axis, args.hour_bin))
        if not args.quick:
            key = f"{loaded.spec.name}_{axis}"
            title = f"{loaded.label}, test users, tuned SmolLM2-135M + outlines ({axis})"
            figures += [plot_difference_heatmap(results[TUNED],
                                                FIGURES / f"synth_real_fig5a_{key}.png", title),
                        plot_scatter(results[TUNED], FIGURES / f"synth_real_fig5b_{key}.png",
                                     title)]
    minutes = (time.perf_counter() - clock) / 60
    report(args, loaded, "synth-real", "Synthesis on real pairs (issue 19)",
           body(args, loaded, events, split, own_categories, training, valid_rows, tables,
                audits, figures, minutes))


if __name__ == "__main__":
    main()
