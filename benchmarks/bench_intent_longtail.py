"""PITuning's long-tail study (the paper's Fig. 8) across disjoint held-out folds of devices.
Writes the ``intent-longtail`` section of BENCHMARKS.md (another dataset:
``intent-longtail-<name>``).

One held-out draw leaves the three rarest intents a handful of test windows each. Here each of
``--folds`` disjoint blocks of ``--held-out`` devices is held out in turn (device-level
cross-validation: the population of a fold is every other device). Each fold trains the teacher
and student of the ``intent`` section on its population, tunes every held-out device with the
four device strategies, scores the baselines, and caches its test-window scores in
``--cache-dir``; the report pools the test windows of all folds. A killed run resumes from the
cache, and folds can run in parallel processes (``--folds 0 2 4 --no-write`` in one,
``--folds 1 3 5 --no-write`` in another, then all folds to write the section).

Run: python benchmarks/bench_intent_longtail.py [bench_intent.py options] --folds 0 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _data import quick_banner, report
from _intent_report import query_time_text
from _report import markdown_table
from bench_intent import (
    BASELINES,
    Run,
    baseline_scores,
    fmt,
    load_protocol,
    log,
    parse,
    settings_key,
)

from generative.intent import intent_metrics, recall_per_intent

STRATEGIES = ("unlearning", "none", "focal", "oversample")
SEEN = "device used it in its tuning periods"


def run_fold(args, fold: int, cache_dir: Path) -> Path:
    """Train, tune and score fold ``fold`` unless its cache already holds these settings."""
    path = cache_dir / f"fold{fold}.npz"
    settings = settings_key(args)  # the fold is in the file name
    if path.exists() and str(np.load(path)["settings"]) == settings:
        log(f"fold {fold}: cached in {path}")
        return path
    started = time.perf_counter()
    data, _ = load_protocol(argparse.Namespace(**{**vars(args), "fold": fold}))
    run = Run(args, data)
    teacher, _ = run.teacher()
    student, _ = run.student(teacher)
    p_out = run.p_out(teacher)
    scores = {f"strategy/{s}": run.individual(student, p_out, s)[0] for s in STRATEGIES}
    baselines, _ = baseline_scores(run, teacher, run.logits(teacher, data.test).numpy())
    scores.update({f"baseline/{name}": s for name, s in baselines.items()})
    targets = np.concatenate([part.target.numpy() for part in (data.population, data.tune,
                                                                data.test)])
    summary = data.summary()
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, settings=settings, y=data.test.target.numpy(),
             device=data.test.user.numpy(), intent_counts=np.bincount(
                 targets, minlength=data.vocab.n_intents),
             intents=np.array(data.vocab.intents), population_users=summary["population_users"],
             held_out_users=summary["held_out_users"], tune_samples=summary["tune_samples"],
             minutes=(time.perf_counter() - started) / 60, **scores)
    os.replace(partial, path)  # a fold is cached whole or not at all
    log(f"fold {fold}: done in {(time.perf_counter() - started) / 60:.1f} min -> {path}")
    return path


def model_label(name: str) -> str:
    """The table label of a cached score array (``strategy/...`` or ``baseline/...``)."""
    kind, rest = name.split("/", 1)
    return rest if kind == "baseline" else f"PITuning student, device tuning: {rest}"


def validation_rows(path: Path) -> tuple[list[dict], int]:
    """Every model's metrics on a fold cached by a ``--validation N`` run (population users in
    the held-out role), and how many users played that role."""
    cached = np.load(path)
    names = [k for k in cached.files if k.startswith(("strategy/", "baseline/"))]
    return ([{"model": model_label(name), **fmt(intent_metrics(cached["y"], cached[name]))}
             for name in names], int(cached["held_out_users"]))


def rare_hits(y, device, predictions: dict, rare: list[int]):
    """Per device: (windows of each rare intent (D, R), hits of each strategy (S, D, R))."""
    devices = np.unique(device)
    index = np.searchsorted(devices, device)
    counts = np.zeros((len(devices), len(rare)))
    hits = np.zeros((len(predictions), len(devices), len(rare)))
    for r, c in enumerate(rare):
        mine = y == c
        np.add.at(counts[:, r], index[mine], 1)
        for s, pred in enumerate(predictions.values()):
            np.add.at(hits[s, :, r], index[mine], pred[mine] == c)
    return counts, hits


def bootstrap_gaps(counts, hits, n_draws: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_draws, S) mean rare recall of strategy 0 minus each strategy's, devices resampled."""
    rng = np.random.default_rng(seed)
    gaps = np.empty((n_draws, hits.shape[0]))
    for b in range(n_draws):
        weight = np.bincount(rng.integers(0, len(counts), len(counts)), minlength=len(counts))
        n = weight @ counts
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.nanmean(np.einsum("d,sdr->sr", weight, hits) / n, axis=1)
        gaps[b] = recall[0] - recall
    return gaps


def tail_rows(y, device, predictions: dict, counts, sizes=(5, 8)) -> list[dict]:
    """Mean recall over the k rarest intents for each k in ``sizes``, per strategy, with the
    bootstrap interval of unlearning's lead: the tail widened until it holds enough windows."""
    rows = []
    order = np.argsort(counts, kind="stable")
    for k in sizes:
        tail = order[:k].tolist()
        device_counts, device_hits = rare_hits(y, device, predictions, tail)
        gaps = np.percentile(bootstrap_gaps(device_counts, device_hits), [2.5, 97.5], axis=0)
        means = [np.mean(list(recall_per_intent(y, pred, tail).values()))
                 for pred in predictions.values()]
        row = {"tail": f"{k} rarest intents ({counts[tail].sum() / counts.sum():.1%} of all "
                       f"windows)", "test windows": int(np.isin(y, tail).sum())}
        for i, name in enumerate(predictions):
            row[name] = f"{means[i]:.3f}" + ("" if i == 0 else
                                             f" (lead [{gaps[0, i]:+.3f}, {gaps[1, i]:+.3f}])")
        rows.append(row)
    return rows


def seen_in_tuning(args, fold: int, cached):
    """Per test window of ``fold``: did its device use the target intent in its tuning periods?
    (and the loaded dataset)"""
    data, loaded = load_protocol(argparse.Namespace(**{**vars(args), "fold": fold}))
    if not np.array_equal(data.test.target.numpy(), cached["y"]):
        raise RuntimeError(f"fold {fold}: the cached test windows are not this protocol's")
    pairs = set(zip(data.tune.user.tolist(), data.tune.target.tolist()))
    return np.array([(u, c) in pairs for u, c in zip(data.test.user.tolist(),
                                                      data.test.target.tolist())]), loaded


def seen_rows(y, seen, predictions: dict, counts, sizes=(3, 8)) -> list[dict]:
    """Recall on the k rarest intents, split by whether the device had used the intent in its
    tuning periods (what any device stage can learn from) or not (only the population knows)."""
    order = np.argsort(counts, kind="stable")
    rows = []
    for k in sizes:
        for used in (True, False):
            mine = np.isin(y, order[:k]) & (seen == used)
            rows.append({"tail": f"{k} rarest intents", SEEN:
                         "yes" if used else "no", "test windows": int(mine.sum()),
                         **{name: f"{(pred[mine] == y[mine]).mean():.3f}" if mine.any() else ""
                            for name, pred in predictions.items()}})
    return rows


def main() -> None:
    extra = argparse.ArgumentParser(add_help=False, usage=argparse.SUPPRESS)
    extra.add_argument("--folds", type=int, nargs="+", default=None, help="default 0-5")
    extra.add_argument("--validation-cache", type=Path, default=None, metavar="NPZ",
                       help="a fold cached by a --validation N run of this script: reported "
                            "beside the test folds as the split that checked the settings")
    extra.add_argument("--cache-dir", type=Path, default=None,
                       help="default runs/intent_longtail (--quick: a temporary folder)")
    own, rest = extra.parse_known_args()
    args = parse(rest, description=__doc__, own=extra)
    own.folds = own.folds or ([0] if args.quick else list(range(6)))
    own.cache_dir = own.cache_dir or (Path(tempfile.mkdtemp(prefix="intent_longtail_"))
                                      if args.quick else Path("runs/intent_longtail"))
    folds = [np.load(run_fold(args, k, own.cache_dir)) for k in own.folds]
    y = np.concatenate([f["y"] for f in folds])
    device = np.concatenate([k * 10_000 + f["device"] for k, f in zip(own.folds, folds)])
    names = [f"strategy/{s}" for s in STRATEGIES] + [f"baseline/{b}" for b in BASELINES]
    scores = {name: np.concatenate([f[name] for f in folds]) for name in names}
    counts = folds[0]["intent_counts"]
    intents = [str(i) for i in folds[0]["intents"]]
    # the rarest intents over all devices' windows among those with a pooled test window
    rare = [c for c in np.argsort(counts, kind="stable").tolist() if (y == c).any()][:3]

    predictions = {s: scores[f"strategy/{s}"].argmax(1) for s in STRATEGIES}
    device_counts, device_hits = rare_hits(y, device, predictions, rare)
    gaps = bootstrap_gaps(device_counts, device_hits)
    per_fold = {s: [] for s in STRATEGIES}
    for f in folds:
        for s in STRATEGIES:
            r = recall_per_intent(f["y"], f[f"strategy/{s}"].argmax(1), rare)
            per_fold[s].append(np.nanmean([r[c] if (f["y"] == c).any() else np.nan
                                           for c in rare]))
    rare_rows, verdicts = [], []
    for i, s in enumerate(STRATEGIES):
        recalls = recall_per_intent(y, predictions[s], rare)
        mean = np.mean(list(recalls.values()))
        low, high = np.percentile(gaps[:, i], [2.5, 97.5])
        wins = sum(a > b for a, b in zip(per_fold["unlearning"], per_fold[s]))
        rare_rows.append({"device tuning": s, **{
            f"recall {intents[c]} (n={int((y == c).sum())})": f"{recalls[c]:.3f}"
            for c in rare}, "mean rare recall": f"{mean:.3f}",
            "unlearning minus this, 95% interval": "" if i == 0 else f"[{low:+.3f}, {high:+.3f}]",
            "folds unlearning ahead": "" if i == 0 else f"{wins} of {len(folds)}",
            "Rec_m": f"{intent_metrics(y, scores[f'strategy/{s}'])['Rec_m']:.4f}"})
        if i:
            first = float(rare_rows[0]["mean rare recall"])
            verdicts.append(f"- mean recall on the 3 rarest intents, unlearning vs {s}: "
                            f"{first:.3f} vs {mean:.3f} (difference 95% interval "
                            f"[{low:+.3f}, {high:+.3f}]): **{'met' if first > mean else 'not met'}"
                            f"**{'' if low > 0 or first <= mean else ' on the point estimate; the interval includes 0'}")

    overall = [{"model": model_label(name), **fmt(intent_metrics(y, scores[name]))}
               for name in names]
    fold_rows = [{"fold": k, "held-out devices": int(f["held_out_users"]),
                  "test windows": len(f["y"]),
                  **{f"{label} Prec_m / Rec_m": "{Prec_m:.3f} / {Rec_m:.3f}".format(
                      **intent_metrics(f["y"], f[name]))
                     for label, name in (("unlearning", "strategy/unlearning"),
                                         ("Markov", f"baseline/{BASELINES[1]}"),
                                         ("LightGBM per device", f"baseline/{BASELINES[2]}"))},
                  "minutes": f"{float(f['minutes']):.0f}"} for k, f in zip(own.folds, folds)]
    ours = intent_metrics(y, scores["strategy/unlearning"])
    for rival in BASELINES[1:]:
        theirs = intent_metrics(y, scores[f"baseline/{rival}"])
        for metric in ("Prec_m", "Rec_m"):
            won = ours[metric] > theirs[metric]
            verdicts.append(f"- student + unlearning vs {rival}, {metric} (pooled): "
                            f"{ours[metric]:.4f} vs {theirs[metric]:.4f}: "
                            f"**{'met' if won else 'not met'}**")
    tails = tail_rows(y, device, predictions, counts)
    seen = [seen_in_tuning(args, k, f) for k, f in zip(own.folds, folds)]
    loaded = seen[-1][1]
    tails_seen = seen_rows(y, np.concatenate([part for part, _ in seen]), predictions, counts)
    body = render(args, loaded.label, own, folds, y, intents, rare, counts, verdicts, rare_rows,
                  (tails, tails_seen), overall, fold_rows)
    report(args, loaded, "intent-longtail", "PITuning long-tail intents across device folds "
           "(Fig. 8)", body)


def unseen_text(rows) -> str:
    """One sentence per tail: the windows no device stage can reach from the device's data."""
    parts = []
    for yes, no in zip(rows[::2], rows[1::2]):
        total = yes["test windows"] + no["test windows"]
        hit = any(float(v or 0) > 0 for k, v in no.items() if k in STRATEGIES)
        parts.append(f"{no['test windows']} of the {total} test windows of the {no['tail']} "
                     f"({no['test windows'] / max(total, 1):.0%}) come from devices that never "
                     f"used that intent in their tuning periods; "
                     + ("some strategy predicted some of them." if hit else
                        "no strategy predicted any of them."))
    return " ".join(parts)


def render(args, label, own, folds, y, intents, rare, counts, verdicts, rare_rows, tails, overall,
           fold_rows) -> str:
    share = ", ".join(f"{intents[c]} {counts[c] / counts.sum():.2%}" for c in rare)
    setup = (
        quick_banner(args)
        + f"{label}, the protocol and settings of the `intent` section, repeated on "
        f"{len(folds)} disjoint folds of {int(folds[0]['held_out_users'])} held-out devices "
        "(fold 0 is the "
        f"`intent` section's split); each fold's population is every other device, and its "
        f"teacher ({args.teacher_steps} steps) and student ({args.distill_steps} distillation "
        f"steps) are trained on it alone. {query_time_text(args)} Device tuning: "
        f"{args.unlearn_steps} unlearning steps then {args.finetune_steps} fine-tuning steps "
        f"(none: {args.finetune_steps} fine-tuning steps only; focal: focal loss; oversample: "
        f"rare intents resampled), Adam {args.individual_lr:g}. Each held-out device's earlier "
        f"{args.split_unit}s tune, its later {args.split_unit}s test. Pooled: "
        f"{len(y):,} test windows of {sum(int(f['held_out_users']) for f in folds)} devices. "
        f"The three rarest intents over all devices' windows (among those with a test "
        f"window): {share} of them. Intervals: "
        "2,000 bootstrap draws of the held-out devices (pooled over folds), percentile 95%.")
    return "\n\n".join([
        setup, "### Bars (issues 5 and 19), pooled over the folds", "\n".join(verdicts),
        "### Long-tail intents: adaptive unlearning vs imbalance baselines (Fig. 8, pooled)",
        markdown_table(rare_rows),
        ("### A wider tail: mean recall over the k rarest intents (pooled; lead: unlearning "
         "minus that strategy, 95% interval)"), markdown_table(tails[0]),
        ("Recall (windows pooled over the intents) by whether the device had used the intent "
         "before:"), markdown_table(tails[1]), unseen_text(tails[1]),
        f"### Overall, pooled over the folds (held-out devices, later {args.split_unit}s)",
        markdown_table(overall), "### Per fold", markdown_table(fold_rows),
        "Minutes: one fold's training, tuning and scoring on 1 thread of the shared 2-core CPU.",
        *validation_text(args, own.validation_cache)])


def validation_text(args, path: Path | None) -> list[str]:
    """The ``--validation-cache`` fold's heading, sentence and table (nothing without one)."""
    if path is None:
        return []
    rows, n_valid = validation_rows(path)
    sentence = (f"{n_valid} population users play the held-out role (`--validation "
                f"{n_valid}`; the test folds' users are not used); their earlier "
                f"{args.split_unit}s tune, their later ones validate. Same settings as above; "
                "no setting was chosen on the test folds.")
    return ["### Validation split", sentence, markdown_table(rows)]


if __name__ == "__main__":
    main()
