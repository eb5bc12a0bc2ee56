"""Fine-tuning recipes (seed paper 000, Sec. 5.3 eq. 27 and Sec. 7.5) measured on this CPU.

SmolLM2-135M-Instruct on a registered dataset with apps and place categories (default: a
SIMULATED population; it has locations), users split by a stable hash into training and
held-out users. The recipes run as a user runs them (subprocesses):
generate_cot.py (teacher: SmolLM2 itself, prefilled format, ``--mode star``), sft.py,
build_preferences.py, dpo.py from the SFT adapter. Then, on the HELD-OUT users only:

- novelty-recommendation accuracy (hit@1) and Recall@5 for apps, locations and intents of the
  ``llm`` strategy with the base model, the SFT adapter and the SFT+DPO adapter
  (``evaluate_recommendations``, ``strategy_options={"llm": {"adapter": ...}}``), next to
  ``popular``;
- the consistency c(y | H_u) of profiles each model writes (what DPO optimises), and eq. 27 on
  held-out preference triplets (loss, implicit-reward accuracy against the SFT reference).

Run: python benchmarks/bench_tuning.py [--dataset simulated] [--users 80] [--cot-users 16]
Writes the ``tuning`` section of BENCHMARKS.md (another dataset: ``tuning-<name>``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import NEEDS, add_dataset_args, load_for_benchmark, parse_args, quick_banner, report
from _report import markdown_table

from uscope.data import cutoff_time, save_events
from uscope.profile import GenerationConfig, profile_users
from uscope.profile.features import FeatureConfig
from uscope.profile.pipeline import build_requests
from uscope.profile.prompting import load_template
from uscope.recommend.evaluate import EvalConfig, evaluate_recommendations
from uscope.tuning.formats import read_jsonl
from uscope.tuning.preferences import build_triplets, consistency_score, vocabulary
from uscope.tuning.tasks import split_users

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).parent / "accelerate"
KINDS = ("app", "location", "intent")
PAPER = {"app": "98%", "location": "78%", "intent": "92%"}
QUICK = {"users": 12, "days": 2, "cot_users": 3, "max_candidates": 3, "sft_epochs": 1,
         "dpo_steps": 1, "max_new_tokens": 24, "profile_tokens": 8, "sft_batch": 1,
         "dpo_batch": 1, "max_length": 512}


def run(stage: str, command: list, timings: dict, threads: int) -> None:
    """Run one recipe as a subprocess, timing it; its output is kept in the work folder."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads),
           "PYTHONWARNINGS": "ignore::FutureWarning", "TOKENIZERS_PARALLELISM": "false"}
    print(f"[{stage}] {' '.join(map(str, command))}", flush=True)
    start = time.perf_counter()
    done = subprocess.run([str(c) for c in command], check=False, cwd=REPO, env=env,
                          capture_output=True, text=True)
    timings[stage] = (time.perf_counter() - start) / 60
    print(done.stdout[-1500:])
    if done.returncode != 0:
        raise SystemExit(f"{stage} failed:\n{done.stderr[-4000:]}")


def recipes(args, work: Path, events_path: Path) -> dict:
    timings: dict[str, float] = {}
    # a quick run trains one example at a time on shortened sequences
    short = ["--max_length", str(args.max_length)] if args.max_length else []
    split = ["--events", events_path, "--cutoff", str(args.cutoff), "--heldout-fraction",
             str(args.heldout), "--split-seed", "0"]
    run("generate_cot", [sys.executable, "recipes/generate_cot.py", *split, "--out",
                         work / "cot", "--mode", "star", "--max-candidates",
                         str(args.max_candidates), "--max-new-tokens", str(args.max_new_tokens),
                         "--max-users", str(args.cot_users), "--threads", str(args.threads),
                         "--tasks", *args.kinds],
        timings, args.threads)
    run("sft", [ACCELERATE, "launch", "--cpu", "recipes/sft.py", "--config",
                "recipes/smollm2-135m/sft/config_lora.yaml", "--dataset_name", work / "cot",
                "--output_dir", work / "sft", "--num_train_epochs", str(args.sft_epochs),
                "--per_device_train_batch_size", str(args.sft_batch), *short,
                "--save_strategy", "no"], timings, args.threads)
    run("build_preferences", [sys.executable, "recipes/build_preferences.py", *split, "--out",
                              work / "prefs", "--chosen-backend", "heuristic", "--rejected",
                              "mismatched"], timings, args.threads)
    run("dpo", [ACCELERATE, "launch", "--cpu", "recipes/dpo.py", "--config",
                "recipes/smollm2-135m/dpo/config_lora.yaml", "--dataset_name", work / "prefs",
                "--sft_adapter", work / "sft", "--output_dir", work / "sft-dpo",
                "--max_steps", str(args.dpo_steps), "--per_device_train_batch_size",
                str(args.dpo_batch), "--gradient_accumulation_steps", "1", *short,
                "--save_strategy", "no"],
        timings, args.threads)
    return timings


def chance_row(events: pd.DataFrame, held_out: list[str], profiles, args) -> tuple[dict, dict]:
    """What a uniform pick among the llm strategy's candidates scores (its shortlist is the
    most popular unused items, i.e. the popular strategy's top ``max_candidates``), and how
    many targets and candidates the held-out users have."""
    from uscope.data import novelty_split
    from uscope.recommend import Recommender

    cut = cutoff_time(events, args.cutoff)
    history = events[events["timestamp"] < cut].reset_index(drop=True)
    popular = Recommender(profiles, history, "popular")
    row, sizes = {"model": "chance (uniform over the candidates)"}, {}
    for kind in args.kinds:
        _, targets = novelty_split(events, kind, cut)
        accuracy, recall, n_targets, n_candidates = [], [], [], []
        for user in sorted(set(held_out) & set(targets)):
            shortlist = [r.item for r in popular.recommend(user, kind=kind,
                                                           k=args.max_candidates)]
            hits = len(set(shortlist) & targets[user])
            accuracy.append(hits / len(shortlist))
            recall.append(min(5, len(shortlist)) / len(shortlist) * hits / len(targets[user]))
            n_targets.append(len(targets[user]))
            n_candidates.append(len(shortlist))
        if accuracy:
            row[f"{kind} accuracy"] = f"{np.mean(accuracy):.3f}"
            row[f"{kind} Recall@5"] = f"{np.mean(recall):.3f}"
            sizes[kind] = f"{np.mean(n_targets):.1f} new items, {np.mean(n_candidates):.1f} " \
                          f"candidates"
    return row, sizes


def recommendation_table(events: pd.DataFrame, held_out: list[str], profiles, variants: dict,
                         args) -> tuple[list[dict], dict, float]:
    start = time.perf_counter()
    rows = {name: {"model": name} for name in ["popular", *variants]}
    users = {}
    for kind in args.kinds:
        for name, adapter in variants.items():
            config = EvalConfig(kind=kind, strategies=("popular", "llm"), seeds=(0,),
                                cutoff=args.cutoff, users=held_out, strategy_options={
                                    "llm": {"adapter": adapter,
                                            "max_candidates": args.max_candidates}})
            try:
                result = evaluate_recommendations(events, config, profiles=profiles)
            except ValueError as exc:  # no held-out user adopts a new item of this kind
                print(f"{kind}: {exc}")
                break
            result = result.set_index("strategy")
            users[kind] = int(result.loc["llm", "users"])
            for strategy, label in (("popular", "popular"), ("llm", name)):
                rows[label][f"{kind} accuracy"] = f"{result.loc[strategy, 'accuracy']:.3f}"
                rows[label][f"{kind} Recall@5"] = f"{result.loc[strategy, 'Recall@5']:.3f}"
            print(kind, name, result[["users", "accuracy", "Recall@5"]].to_dict(), flush=True)
    return list(rows.values()), users, (time.perf_counter() - start) / 60


def profile_table(events: pd.DataFrame, held_out: list[str], variants: dict, cut,
                  tokens: int = 64) -> list[dict]:
    from uscope.profile.backends.hf import TransformersBackend

    history = events[(events["timestamp"] < cut) & events["user_id"].isin(held_out)]
    users = sorted(history["user_id"].unique())
    requests = build_requests(history.reset_index(drop=True), users, load_template(),
                              FeatureConfig())
    everyone = build_requests(events[events["timestamp"] < cut].reset_index(drop=True),
                              sorted(events["user_id"].unique()), load_template(),
                              FeatureConfig())
    names = vocabulary(r.features for r in everyone)
    rows = []
    for name, adapter in variants.items():
        writer = TransformersBackend(adapter=adapter,
                                     generation=GenerationConfig(max_new_tokens=tokens))
        written = profile_users(history, backend=writer, users=users)
        texts = dict(zip(written.frame["user_id"], written.frame["profile"]))
        scores = [consistency_score(texts.get(r.user_id), r.features, names) for r in requests]
        rows.append({"profile writer": name, "users": len(scores),
                     "mean consistency": f"{np.mean(scores):+.3f}",
                     "share with c > 0": f"{np.mean(np.array(scores) > 0):.2f}"})
    return rows


def dpo_check(events: pd.DataFrame, held_out: list[str], work: Path, cut, beta: float) -> dict:
    """Eq. 27 on held-out triplets: the SFT+DPO adapter against its SFT reference."""
    from peft import PeftModel

    from uscope.models import load_instruct_lm
    from uscope.tuning.objective import check_preferences

    history = events[(events["timestamp"] < cut) & events["user_id"].isin(held_out)]
    users = sorted(history["user_id"].unique())
    requests = build_requests(history.reset_index(drop=True), users, load_template(),
                              FeatureConfig())
    from uscope.profile.backends.heuristic import heuristic_profile

    rows, _ = build_triplets(requests, {r.user_id: [heuristic_profile(r.features)]
                                        for r in requests})
    base, tokenizer = load_instruct_lm()
    model = PeftModel.from_pretrained(base, str(work / "sft-dpo"), adapter_name="default")
    model.load_adapter(str(work / "sft"), adapter_name="sft")
    model.set_adapter("default")
    model.eval()
    dpo = check_preferences(model, tokenizer, rows, beta, reference_adapter="sft")
    return {"triplets": dpo.triplets, "loss": dpo.loss, "reward_accuracy": dpo.reward_accuracy,
            "mean_margin": dpo.mean_margin}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=80, help="users (simulated: how many)")
    parser.add_argument("--days", type=int, default=7, help="days of the simulated population")
    parser.add_argument("--cutoff", type=float, default=0.3)
    parser.add_argument("--heldout", type=float, default=0.3)
    parser.add_argument("--max-candidates", type=int, default=10)
    parser.add_argument("--cot-users", type=int, default=16,
                        help="training users asked about (CPU budget); DPO uses all of them")
    parser.add_argument("--sft-epochs", type=int, default=2)
    parser.add_argument("--dpo-steps", type=int, default=8)
    parser.add_argument("--sft-batch", type=int, default=4)
    parser.add_argument("--dpo-batch", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=None,
                        help="max_length of SFT and DPO (default: the recipe configs')")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="tasks of the CoT data and the evaluation")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="teacher replies")
    parser.add_argument("--profile-tokens", type=int, default=64, help="profiles written")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None,
                        help="default runs/bench_tuning (--quick: a temporary folder)")
    add_dataset_args(parser, default="simulated")
    parser.add_argument("--dry", dest="no_write", action="store_true", help="= --no-write")
    args = parse_args(parser, argv, quick=QUICK)
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    args.work = args.work or (Path(tempfile.mkdtemp(prefix="bench_tuning_")) if args.quick
                              else REPO / "runs" / "bench_tuning")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    data = load_for_benchmark(
        args, NEEDS["bench_tuning"][0], "bench_tuning", quick_users=args.users,
        options={"simulated": {"n_users": args.users, "days": args.days, "seed": 0}})
    events = data.events
    args.users = events["user_id"].nunique()
    save_events(events, args.work / "events.parquet")
    train, held_out = split_users(sorted(events["user_id"].unique()), args.heldout, seed=0)
    timings = recipes(args, args.work, args.work / "events.parquet")

    cut = cutoff_time(events, args.cutoff)
    history = events[events["timestamp"] < cut].reset_index(drop=True)
    profiles = profile_users(history, backend="heuristic")
    variants = {"base SmolLM2-135M": None, "SFT": args.work / "sft",
                "SFT+DPO": args.work / "sft-dpo"}
    rec_rows, rec_users, rec_minutes = recommendation_table(events, held_out, profiles,
                                                            variants, args)
    chance, sizes = chance_row(events, held_out, profiles, args)
    rec_rows.insert(0, chance)
    start = time.perf_counter()
    prof_rows = profile_table(events, held_out, variants, cut, args.profile_tokens)
    prof_minutes = (time.perf_counter() - start) / 60
    dpo_stats = dpo_check(events, held_out, args.work, cut, beta=0.1)

    cot = json.loads((args.work / "cot" / "manifest.json").read_text())
    prefs = json.loads((args.work / "prefs" / "manifest.json").read_text())
    summary = cot["summary"]
    n_sft = len(read_jsonl(args.work / "cot" / "train.jsonl"))
    n_dpo = len(read_jsonl(args.work / "prefs" / "train.jsonl"))
    total = (time.perf_counter() - started) / 60
    kinds = [k for k in args.kinds if k in rec_users]
    columns = ["model"] + [f"{k} {m}" for k in kinds for m in ("accuracy", "Recall@5")]
    days = "" if data.spec.real else f" x {args.days} days, seed 0; it has locations"
    what = f"**{data.label}** ({args.users} users{days})"
    body = quick_banner(args) + f"""\
{what}.
Users split by a stable hash: {len(train)} training users, {len(held_out)} held out
(never in a dataset). Novelty cut-off at {args.cutoff:.0%} of the time span ({cut:%a %H:%M}):
targets are the items a user first used after it. Model: SmolLM2-135M-Instruct (bundled), LoRA
r=16 on the q/k/v/o/gate/up/down projections, fp32 on this CPU, {args.threads} thread(s).

**What ran.** Teacher = SmolLM2-135M itself (no frontier model offline), prefilled format
(`uscope.tuning.teacher`), mode `star`: rejection sampling first (greedy, 1 reply), then
answer-hinted rationalisation for the cases sampling missed; asked about the first
{args.cot_users} training users (CPU budget). {summary['cases']} cases,
{summary['accepted']} traces accepted (by mode {summary['accepted_by_mode']}, by task
{summary['accepted_by_task']}); replies by outcome {summary['replies']} (dropped replies are
never written). SFT: {n_sft} training examples, {args.sft_epochs} epoch(s), batch {args.sft_batch},
lr 2e-4.
DPO (eq. 27, sigmoid, beta 0.1) from the SFT adapter (reference = frozen SFT copy): {n_dpo}
triplets (y_w = the heuristic writer's profile, c = {prefs['report']['mean_chosen_consistency']};
y_l = the least similar other user's, c = {prefs['report']['mean_rejected_consistency']}),
{args.dpo_steps} steps of batch {args.dpo_batch} ({min(n_dpo, args.dpo_batch * args.dpo_steps)}
pairs seen).

**Novelty recommendation on the held-out users** (`llm` strategy, {args.max_candidates}
candidates = the most popular unused items, heuristic profiles of the history before the
cut-off, same prompt as the training examples; users per kind: {rec_users}; one bootstrap
resample of the held-out users, the same one for every row, so rows are paired; the chance row
is over the distinct held-out users):

{markdown_table(rec_rows, columns)}

Per held-out user on average: {"; ".join(f"{k}: {v}" for k, v in sizes.items())}. Where the
chance row is near 1 (every candidate is a new item of the user) or the users are few, the
table cannot separate the models; a difference of 0.05 in app accuracy is one user of 20.

Paper (Llama-3.1-8B + LoRA, Qwen3-235B teacher, 500 users, one A100; reference for GPU runs,
not comparable to this 135M model on simulated users): app {PAPER['app']}, location
{PAPER['location']}, intent {PAPER['intent']}.

**Profiles the model writes for held-out users** (profile_v2 prompt, greedy,
{args.profile_tokens} tokens):
consistency c(y | H_u) = evidence recall - false-mention share (`uscope.tuning.preferences`),
in [-1, 1]; the heuristic writer scores 1.00 by construction.

{markdown_table(prof_rows, ["profile writer", "users", "mean consistency", "share with c > 0"])}

**Eq. 27 on held-out triplets** (SFT+DPO policy vs its SFT reference, beta 0.1):
{dpo_stats['triplets']} triplets, loss {dpo_stats['loss']:.4f} (log 2 = 0.6931 means no
preference learned), implicit-reward accuracy {dpo_stats['reward_accuracy']:.2f}, mean
log-ratio margin {dpo_stats['mean_margin']:+.3f}.

**Minutes** (this shared 2-core CPU): generate_cot {timings['generate_cot']:.1f},
sft {timings['sft']:.1f}, build_preferences {timings['build_preferences']:.1f},
dpo {timings['dpo']:.1f}, recommendation evaluation {rec_minutes:.1f}, profile writing
{prof_minutes:.1f}; whole run {total:.1f}.
"""
    report(args, data, "tuning", "Fine-tuning recipes: CoT-distillation SFT and DPO "
           "(SmolLM2-135M, CPU)", body)


if __name__ == "__main__":
    main()
