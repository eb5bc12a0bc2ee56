"""Faithfulness DPO (eq. 27, issue 22): SmolLM2's free-form profiles before and after.

Data: real netfp (English names, which the bundled models read) and Foursquare NYC, user ids
prefixed by data set, in one event table written to the work folder (``runs/``, ignored by
git).
Users split by ``uscope.tuning.tasks.split_users`` (stable hash, 30% held out); the
recipes run as a user runs them:

1. ``recipes/build_preferences.py --rejected contradicting``: K sampled free-form profiles
   (``profile_v2``) per training user, ranked by ``uscope.profile.faithfulness``;
2. ``accelerate launch --cpu recipes/dpo.py --config
   recipes/smollm2-135m/dpo/config_faithfulness.yaml``;
3. held-out users profiled greedily, free-form, by the base model and by the DPO adapter at the
   same budget: contradiction rate (share of profiles with a refuted claim), claims refuted,
   named-fact recall and consistency, per data set and pooled, with the paired bootstrap of
   the per-user contradiction indicator (DPO minus base).

Stages resume from the work folder (``runs/bench_faithful_dpo``). Run:
python benchmarks/bench_faithful_dpo.py [--train-users 48] [--eval-users 32] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section
from bench_tuning import ACCELERATE, REPO, run  # a recipe as a timed subprocess

DATASETS = {"netfp": {"language": "en"}, "foursquare-nyc": {}}
HELDOUT, SPLIT_SEED = 0.3, 0
CONFIG = "recipes/smollm2-135m/dpo/config_faithfulness.yaml"


def _args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-users", type=int, default=48, help="per data set")
    parser.add_argument("--eval-users", type=int, default=32, help="held-out users per data set")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=0.9)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench_faithful_dpo")
    parser.add_argument("--quick", action="store_true", help="a handful of users, one DPO step")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_users, args.eval_users, args.samples, args.max_new_tokens = 4, 2, 2, 48
        args.work = Path(tempfile.mkdtemp(prefix="bench_faithful_dpo_quick_"))
    return args


def events_table(args):
    """(events of the chosen users, {data set: (train users, held-out users)})."""
    import pandas as pd

    from uscope.data.datasets import load_dataset
    from uscope.data.schema import validate_events
    from uscope.tuning.tasks import split_users

    parts, chosen = [], {}
    for name, options in DATASETS.items():
        events = load_dataset(name, **options).events.copy()
        events["user_id"] = f"{name}:" + events["user_id"].astype(str)
        train, held = split_users(sorted(events["user_id"].unique()), HELDOUT, SPLIT_SEED)
        chosen[name] = (train[:args.train_users], held[:args.eval_users])
        parts.append(events[events["user_id"].isin(chosen[name][0] + chosen[name][1])])
    return validate_events(pd.concat(parts, ignore_index=True)), chosen


def train(args, events_path: Path, timings: dict) -> dict:
    prefs, adapter = args.work / "prefs", args.work / "adapter"
    if not (prefs / "train.jsonl").exists():
        run("build_preferences", [
            sys.executable, "recipes/build_preferences.py", "--events", events_path,
            "--cutoff", "2100-01-01", "--heldout-fraction", str(HELDOUT), "--split-seed",
            str(SPLIT_SEED), "--out", prefs, "--chosen-backend", "transformers", "--samples",
            str(args.samples), "--temperature", str(args.temperature), "--rejected",
            "contradicting", "--max-new-tokens", str(args.max_new_tokens), "--batch-size", "16",
            "--threads", str(args.threads), "--resume"], timings, args.threads)
    if not (adapter / "adapter_config.json").exists():
        steps = ["--max_steps", "1"] if args.quick else ["--num_train_epochs", str(args.epochs)]
        run("dpo", [ACCELERATE, "launch", "--cpu", "recipes/dpo.py", "--config", CONFIG,
                    "--dataset_name", prefs, "--output_dir", adapter, *steps], timings,
            args.threads)
    return json.loads((prefs / "manifest.json").read_text())


def evaluate(args, events, chosen, adapter: Path, timings: dict) -> dict:
    """Per data set: {writer: (features, texts)} of the held-out users."""
    from uscope.profile import GenerationConfig, ProfileConfig, profile_users
    from uscope.profile.backends.hf import TransformersBackend
    from uscope.profile.population import iter_features

    out = {}
    for writer, path in (("base SmolLM2-135M", None), ("faithfulness DPO", adapter)):
        start = time.perf_counter()
        backend = TransformersBackend(adapter=path, generation=GenerationConfig(
            max_new_tokens=args.max_new_tokens))
        for name, (_, held) in chosen.items():
            ps = profile_users(events, backend, users=held,
                               config=ProfileConfig(template="profile_v2", batch_size=16))
            ok = (ps.frame["status"] == "ok").tolist()
            texts = [t if isinstance(t, str) else "" for t in ps.frame["profile"]]
            out.setdefault(name, {})[writer] = (list(iter_features(events, held)), texts, ok)
        timings[f"profiles ({writer})"] = (time.perf_counter() - start) / 60
    return out


def table(results, events) -> tuple[list[dict], list[str]]:
    import numpy as np

    from uscope.profile.faithfulness import contradictions, measure, vocabulary
    from uscope.profile.population import iter_features
    from uscope.recommend.metrics import paired_bootstrap

    names = vocabulary(iter_features(events, sorted(events["user_id"].unique())))
    rows, pooled, notes = [], {}, []
    for name, writers in results.items():
        for writer, (features, texts, ok) in writers.items():
            m = measure(texts, features, names)
            flags = [bool(contradictions(t, f, names)) for t, f in zip(texts, features)]
            failed = len(ok) - sum(ok)
            pooled.setdefault(writer, []).extend(flags)
            rows.append({"data": f"{name} (real)", "profile writer": writer,
                         "held-out users": len(texts), "failed (empty text)": failed,
                         "contradiction rate": f"{m.contradiction_rate:.1%}",
                         "claims refuted": f"{m.n_refuted}/{m.n_claims}",
                         "refuted (name/time/number)": "/".join(
                             str(m.refuted_by_kind[k]) for k in ("name", "time", "number")),
                         "top-1 category": f"{m.top1_category:.0%}",
                         "consistency": f"{m.mean_consistency:+.2f}"})
    base, tuned = (np.array(v, dtype=float) for v in pooled.values())
    diff = paired_bootstrap(tuned, base)
    ratio = tuned.mean() / base.mean() if base.mean() else float("nan")
    notes.append(f"Pooled over both data sets ({len(base)} held-out users): contradiction rate "
                 f"{base.mean():.1%} (base) -> {tuned.mean():.1%} (DPO), ratio {ratio:.2f}; "
                 f"paired difference {diff['mean']:+.3f} [{diff['low']:+.3f}, "
                 f"{diff['high']:+.3f}].")
    return rows, notes


def main(argv=None) -> None:
    args = _args(sys.argv[1:] if argv is None else argv)
    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    events, chosen = events_table(args)
    events_path = args.work / "events.parquet"
    events.to_parquet(events_path)
    timings: dict[str, float] = {}
    manifest = train(args, events_path, timings)
    results = evaluate(args, events, chosen, args.work / "adapter", timings)
    rows, notes = table(results, events)
    report = manifest["report"]
    text = "\n".join([
        (f"Training users: {sum(len(t) for t, _ in chosen.values())} ({args.train_users} per "
        f"data set, the first by id of the split's training side); {args.samples} samples each "
        f"at temperature {args.temperature}, {args.max_new_tokens} new tokens, cut at the last "
        f"sentence end. Pairs written: {report['written']} of {report['users']} users "
        f"(dropped: {report['dropped']}). DPO: `{CONFIG}`"
        f"{' (1 step: QUICK)' if args.quick else f', {args.epochs:g} epochs'}. Held-out users "
        f"profiled greedily, free-form (`profile_v2`), {args.max_new_tokens} new tokens."), "",
        markdown_table(rows), "", *[f"- {n}" for n in notes], "",
        "Minutes (this shared 2-core CPU): " + ", ".join(
            f"{k} {v:.1f}" for k, v in timings.items()) + " (stages resumed from the work "
        "folder are not timed)."])
    print(text)
    if not (args.quick or args.no_write):
        write_section("tuning-faithfulness", "Faithfulness DPO (SmolLM2-135M, CPU)", text)


if __name__ == "__main__":
    main()
