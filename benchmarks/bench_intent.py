"""PITuning on a registered dataset (default: the real netfp data): student vs baselines,
unlearning vs imbalance baselines, ablations, and the student's deployment figures. Writes the
``intent`` section of BENCHMARKS.md (another dataset: ``intent-<dataset>``).

Protocol: each user's events ordered in time; population = all users but ``--held-out``
randomly drawn ones (at most a fifth of them); each held-out user tunes on its earlier events
and is tested on its later ones. Setting (``--setting auto``): "Honor" (event = app, intent =
app category) when the data has apps, else "Mobile" (event = place, intent = place category).
``--profiles`` conditions every model on h_u from a ProfileSet, aligned by user id
(``generative.conditioning``); write it from history that excludes the test events.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import (
    INTENT_NEEDS,
    add_dataset_args,
    load_for_benchmark,
    parse_args,
    report,
    require,
)
from _intent_deploy import deployment
from _intent_report import ablation_budget, ablation_rows, bar_verdicts, render
from _report import cpu_description

from generative.conditioning import MISSING_POLICIES, align_embeddings
from generative.intent import (
    HONOR,
    MOBILE,
    SPLIT_UNITS,
    BackboneConfig,
    FirstOrderMarkov,
    IndividualConfig,
    IntentPredictor,
    MostFrequent,
    ProtocolConfig,
    TrainConfig,
    appendix_e_features,
    build_protocol,
    distill,
    fit_lightgbm,
    intent_metrics,
    lightgbm_per_user,
    load_backbone,
    output_distribution,
    predict_logits,
    predict_with_adapters,
    recall_per_intent,
    train_population,
    tune_users,
    validation_protocol,
)
from generative.intent.metrics import METRIC_NAMES
from uscope.profile import ProfileSet

SETTINGS = {"honor": (HONOR, INTENT_NEEDS["honor"]),
            "mobile": (MOBILE, INTENT_NEEDS["mobile"])}
# the options that change a trained model's scores; a cache written under others is not reused
SCORE_SETTINGS = ("held_out", "teacher_layers", "teacher_steps", "distill_steps", "batch_size",
                  "lr", "backbone_lr", "distill_lr", "warmup", "schedule", "unlearn_steps",
                  "finetune_steps", "individual_lr", "prior_shift", "prior_scale",
                  "input_length", "query_time", "quick", "dataset", "events", "max_users",
                  "setting", "profiles", "split_unit", "seed", "validation")
# the same, for a stage cached by ``--cache-dir`` (longtail's fold key stays as it was)
STAGE_SETTINGS = SCORE_SETTINGS + ("missing_profiles", "format", "column_map", "fold")
QUICK = {"held_out": 10, "teacher_steps": 4, "distill_steps": 4, "unlearn_steps": 2,
         "finetune_steps": 2, "input_length": 10, "batch_size": 16}


def parse(argv: list[str] | None = None, *, description: str | None = None,
          own: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """This script's options; a script built on it passes its ``description`` and its ``own``
    parser (parsed first by that script; ``usage=argparse.SUPPRESS``), whose options ``-h``
    then lists too."""
    p = argparse.ArgumentParser(
        description=description or __doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"{own.prog}'s own {own.format_help()}" if own else None)
    p.add_argument("--setting", choices=("auto", *SETTINGS), default="auto",
                   help="honor: event = app; mobile: event = place; auto: honor if apps")
    p.add_argument("--profiles", type=Path, default=None,
                   help="ProfileSet parquet: condition the models on its h_u (by user id)")
    p.add_argument("--missing-profiles", choices=MISSING_POLICIES, default="error",
                   help="users without a profile: fail, or give them the mean h_u")
    p.add_argument("--held-out", type=int, default=200, help="at most a fifth of the users")
    p.add_argument("--split-unit", choices=SPLIT_UNITS, default="hour",
                   help="each held-out user's earlier/later split keeps whole hours, days or "
                        "weeks on one side (week: data over months, e.g. foursquare-nyc)")
    p.add_argument("--seed", type=int, default=0,
                   help="model initialisation and batch order (the user split stays fixed)")
    p.add_argument("--fold", type=int, default=0,
                   help="which disjoint block of --held-out devices is held out (0: reported)")
    p.add_argument("--teacher-layers", type=int, default=4, help="first N SmolLM2 blocks")
    p.add_argument("--teacher-steps", type=int, default=250)
    p.add_argument("--distill-steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="teacher: new modules (Adam)")
    p.add_argument("--backbone-lr", type=float, default=1e-4, help="teacher: backbone blocks")
    p.add_argument("--distill-lr", type=float, default=1e-3, help="student: all parameters")
    p.add_argument("--warmup", type=int, default=0, help="linear lr warm-up steps (both)")
    p.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                   help="lr after warm-up (teacher and student)")
    p.add_argument("--ablation-teacher-steps", type=int, default=None,
                   help="teacher steps of each ablation (default: --teacher-steps)")
    p.add_argument("--ablation-distill-steps", type=int, default=None,
                   help="student steps of each ablation (default: --distill-steps)")
    p.add_argument("--ablation-seeds", type=int, default=1,
                   help="repeat the ablations from seeds --seed, --seed + 1, ...: the table "
                        "gives mean +- sd and how many seeds each variant trails full PITuning")
    p.add_argument("--validation", type=int, default=0, metavar="N",
                   help="> 0: run on a validation split instead (N population devices play "
                        "the held-out role; the real held-out devices are unused; no write)")
    p.add_argument("--prior-shift", type=float, default=None, metavar="K",
                   help="device stage: label-shift init of b_2, p_dev smoothed with K")
    p.add_argument("--prior-scale", type=float, default=1.0,
                   help="device stage: multiplier of the label-shift log ratio")
    p.add_argument("--unlearn-steps", type=int, default=10, help="device stage")
    p.add_argument("--finetune-steps", type=int, default=40, help="device stage")
    p.add_argument("--individual-lr", type=float, default=1e-2, help="device stage (Adam)")
    p.add_argument("--input-length", type=int, default=30)
    p.add_argument("--query-time", action="store_true",
                   help="models also read the time the prediction is for (IntentModelConfig)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="keep each finished stage (main run, each ablation seed) here; a rerun "
                        "with the same settings resumes after the last one")
    add_dataset_args(p, default="netfp")  # --quick: tiny GPT-2 teacher, few steps and users
    return parse_args(p, argv, quick=QUICK)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def settings_key(args, names: tuple[str, ...] = SCORE_SETTINGS) -> str:
    """The options ``names`` as one string, to key caches by."""
    return json.dumps({k: getattr(args, k) for k in names}, sort_keys=True, default=str)


def cached_stage(cache_dir: Path | None, name: str, settings: str, compute) -> dict:
    """``compute()`` (a JSON-able dict), with the CPU it ran on added; or the one an earlier run
    with these settings left in ``cache_dir/name.json``: a killed run resumes after its last
    finished stage. A stage cached under other settings is computed again and replaced."""
    path = None if cache_dir is None else cache_dir / f"{name}.json"
    if path is not None and path.exists():
        cached = json.loads(path.read_text())
        if cached["settings"] == settings:
            log(f"{name}: cached in {path} (ran on {cached['result']['cpu']})")
            return cached["result"]
        log(f"{name}: {path} holds other settings; computing it again")
    result = {**compute(), "cpu": cpu_description()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"settings": settings, "result": result}))
        os.replace(partial, path)  # a stage is cached whole or not at all
    return result


def rarest_intents(data, k: int = 3) -> list[int]:
    """The k intents with the smallest population shares (the long tail of Fig. 8)."""
    return torch.argsort(data.p_pop)[:k].tolist()


def fmt(metrics: dict) -> dict:
    return {k: f"{metrics[k]:.4f}" for k in METRIC_NAMES}


class Run:
    """One population -> distill -> individual pipeline with shared data and settings; ``seed``
    (default ``--seed``) sets batch order, masks, random initialisations and device tuning."""

    def __init__(self, args, data, teacher_steps=None, distill_steps=None, seed=None):
        self.args, self.data = args, data
        self.seed = args.seed if seed is None else seed
        self.h = user_embeddings(args, data)  # (U, D) in data.seqs order, or None
        teacher_steps = teacher_steps or args.teacher_steps
        distill_steps = distill_steps or args.distill_steps
        self.teacher_backbone = (
            BackboneConfig(kind="gpt2", n_layer=2, n_embd=64, n_head=2, seed=self.seed)
            if args.quick else
            BackboneConfig(kind="smollm2", n_layers=args.teacher_layers, seed=self.seed))
        self.student_backbone = BackboneConfig(kind="gpt2", n_layer=4, n_embd=128, n_head=4,
                                               seed=self.seed)
        schedule = {"warmup_steps": min(args.warmup, teacher_steps // 2),
                    "schedule": args.schedule}
        self.pop_train = TrainConfig(steps=teacher_steps, batch_size=args.batch_size,
                                     lr=args.lr, backbone_lr=args.backbone_lr, log_every=50,
                                     seed=self.seed, **schedule)
        self.distill_train = TrainConfig(steps=distill_steps, batch_size=64, lr=args.distill_lr,
                                         backbone_lr=args.distill_lr, log_every=100,
                                         warmup_steps=min(args.warmup, distill_steps // 2),
                                         schedule=args.schedule, seed=self.seed)
        self.options = {"embed_dim": 64, "attention_dim": 32, "mlp_hidden": 256,
                        "query_time": args.query_time,
                        "user_embedding_dim": 0 if self.h is None else self.h.shape[1]}

    def logits(self, model, samples):
        return predict_logits(model, samples, user_embeddings=self.h)

    def teacher(self, pretrained=True, iat=True, recon=True):
        backbone = load_backbone(replace(self.teacher_backbone, pretrained=pretrained))
        model = IntentPredictor.from_vocab(self.data.vocab, backbone, iat=iat, **self.options)
        log(f"teacher: {model.backbone_label}, {model.n_parameters() / 1e6:.2f}M parameters")
        start = time.perf_counter()
        train_population(model, self.data.population,
                         replace(self.pop_train, recon_weight=1.0 if recon else 0.0),
                         user_embeddings=self.h, log=log)
        return model, time.perf_counter() - start

    def student(self, teacher, iat=True):
        model = IntentPredictor.from_vocab(self.data.vocab, load_backbone(self.student_backbone),
                                           iat=iat, **self.options)
        start = time.perf_counter()
        distill(model, teacher, self.data.population, self.distill_train,
                user_embeddings=self.h, log=log)
        return model, time.perf_counter() - start

    def p_out(self, teacher):
        """P_out (eq. 8) of the population predictor on a fixed population subset."""
        pop = self.data.population
        index = torch.randperm(len(pop), generator=torch.Generator().manual_seed(1))[:4000]
        return output_distribution(self.logits(teacher, pop.subset(index)))

    def individual(self, student, p_out, strategy="unlearning"):
        start = time.perf_counter()
        a = self.args
        config = IndividualConfig(strategy=strategy, unlearn_steps=a.unlearn_steps,
                                  finetune_steps=a.finetune_steps, prior_shift=a.prior_shift,
                                  prior_scale=a.prior_scale, lr=a.individual_lr,
                                  seed=self.seed)
        adapters = tune_users(student, self.data.tune, p_out, self.data.p_pop, config, self.h)
        scores = predict_with_adapters(student, self.data.test, adapters, self.h)
        return scores.numpy(), adapters, time.perf_counter() - start


def user_embeddings(args, data) -> torch.Tensor | None:
    """h_u of ``--profiles`` in the protocol's user order (None without it)."""
    if args.profiles is None:
        return None
    h = align_embeddings(ProfileSet.load(args.profiles), data.seqs.user_ids,
                         missing=args.missing_profiles, source=str(args.profiles))
    return torch.from_numpy(h)


def load_protocol(args):
    """(protocol, loaded dataset) of the run (the validation split with ``--validation``)."""
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    loaded = load_for_benchmark(args, ("times",), "bench_intent", quick_users=80)
    setting = args.setting if args.setting != "auto" else (
        "honor" if "apps" in loaded.spec.fields else "mobile")
    config, needs = SETTINGS[setting]
    require(loaded, needs, f"bench_intent ({setting} setting)")
    n_users = loaded.events["user_id"].nunique()
    held_out = min(args.held_out, max(1, n_users // 5))
    data = build_protocol(loaded.events, replace(config, input_length=args.input_length),
                          ProtocolConfig(n_individual=held_out, seed=0, fold=args.fold,
                                         split_unit=args.split_unit),
                          source=loaded.label)
    if args.validation > 0:  # choose settings here: the held-out devices are not touched
        data = validation_protocol(data, n_valid=args.validation, seed=1,
                                   split_unit=args.split_unit)
        args.no_write = True
    log(f"protocol ({loaded.label}, {setting}): {data.summary()}")
    args.setting_used = setting
    return data, loaded


def main() -> None:
    args = parse()
    data, loaded = load_protocol(args)
    summary = data.summary()
    run = Run(args, data)
    y = data.test.target.numpy()
    main_run = cached_stage(args.cache_dir, "main", settings_key(args, STAGE_SETTINGS),
                            lambda: main_stage(run, y))
    strategy_scores = {k: np.asarray(v) for k, v in main_run["strategy_scores"].items()}
    timings = dict(main_run["timings"])
    # ablations: each retrains the population teacher, distils and tunes with unlearning
    ablation_table, cpus = ablations(args, data, run, y, strategy_scores, timings)
    cpus = {"main run": main_run["cpu"], **cpus}
    verdicts = bar_verdicts(main_run["rows"], main_run["rare_rows"])
    body = render(args, loaded.label, summary, main_run["rows"], main_run["rare_rows"],
                  ablation_table, main_run["deploy"], timings, verdicts)
    if len(set(cpus.values())) > 1:  # resumed on another machine: its timings differ
        body += "\n\nStages ran on different CPUs (resumed from `--cache-dir`): " + "; ".join(
            f"{stage}: {cpu}" for stage, cpu in cpus.items()) + ".\n"
    report(args, loaded, "intent", "PITuning intent head", body)


def main_stage(run, y: np.ndarray) -> dict:
    """Teacher, student, the held-out devices tuned four ways, the baselines and the student's
    deployment figures: the tables of the run (JSON-able), and its test scores per strategy."""
    data = run.data
    rows, timings = [], {}
    teacher, timings["population tuning (teacher)"] = run.teacher()
    student, timings["distillation (student)"] = run.student(teacher)
    p_out = run.p_out(teacher)
    teacher_test = run.logits(teacher, data.test).numpy()
    rows.append({"model": f"teacher, population only ({teacher.backbone_label})",
                 **fmt(intent_metrics(y, teacher_test))})
    rows.append({"model": "student, population only (distilled, before individual tuning)",
                 **fmt(intent_metrics(y, run.logits(student, data.test).numpy()))})
    strategy_scores = {}
    for strategy in ("unlearning", "none", "focal", "oversample"):
        scores, adapters, seconds = run.individual(student, p_out, strategy)
        strategy_scores[strategy] = scores
        timings[f"individual tuning ({strategy}), {len(adapters)} devices"] = seconds
        if strategy == "unlearning":
            full_adapters = adapters
    rows.append({"model": "**PITuning student + adaptive unlearning (ours)**",
                 **fmt(intent_metrics(y, strategy_scores["unlearning"]))})
    baselines, timings["LightGBM (features + per-device + pooled)"] = baseline_rows(
        run, teacher, teacher_test)
    rows += baselines
    return {"rows": rows, "rare_rows": rare_intent_rows(data, y, strategy_scores),
            "deploy": deployment(run, student, teacher, full_adapters), "timings": timings,
            # what the ablations reuse at the main budget
            "strategy_scores": {k: strategy_scores[k].tolist() for k in ("unlearning", "none")}}


def rare_intent_rows(data, y: np.ndarray, strategy_scores: dict) -> list[dict]:
    """Fig. 8: recall on the three rarest intents (population shares) per device strategy."""
    rare = rarest_intents(data)
    rows = []
    for strategy, scores in strategy_scores.items():
        recalls = recall_per_intent(y, scores.argmax(1), rare)
        m = intent_metrics(y, scores)
        rows.append({"individual tuning": strategy, **{
            f"recall {data.vocab.intents[c]} (n={int((y == c).sum())})": f"{recalls[c]:.3f}"
            for c in rare}, "mean rare recall": f"{np.mean(list(recalls.values())):.3f}",
            "Rec_w": f"{m['Rec_w']:.4f}", "Rec_m": f"{m['Rec_m']:.4f}"})
    return rows


BASELINES = ("most frequent intent per device",
             "first-order Markov (device, population back-off)",
             "LightGBM per device (Table 5, Appendix E features)",
             "LightGBM pooled over held-out devices' tuning hours")


def baseline_scores(run, teacher, teacher_test: np.ndarray) -> tuple[dict, float]:
    """Test-window scores of each of ``BASELINES`` (LightGBM's Appendix E features include the
    population teacher's probabilities), and the seconds LightGBM took."""
    data = run.data
    n_i = data.vocab.n_intents
    most = MostFrequent(n_i).fit(data.tune, data.population)
    markov = FirstOrderMarkov(n_i).fit(data.tune, data.population)
    slot = data.data_config.slot_minutes
    start = time.perf_counter()
    tune_x, _ = appendix_e_features(data.tune, data.seqs, n_i, slot, torch.softmax(
        run.logits(teacher, data.tune), -1).numpy())
    test_x, _ = appendix_e_features(data.test, data.seqs, n_i, slot,
                                    torch.softmax(torch.from_numpy(teacher_test), -1).numpy())
    per_user = lightgbm_per_user(tune_x, data.tune, test_x, data.test, n_i)
    booster = fit_lightgbm(tune_x, data.tune.target.numpy(), data.tune.user.numpy(), n_i)
    scores = (most.scores(data.test), markov.scores(data.test), per_user,
              booster.predict(test_x))
    return dict(zip(BASELINES, (np.asarray(s) for s in scores))), time.perf_counter() - start


def baseline_rows(run, teacher, teacher_test: np.ndarray) -> tuple[list[dict], float]:
    """One metrics row per baseline, and the seconds LightGBM took."""
    y = run.data.test.target.numpy()
    scores, seconds = baseline_scores(run, teacher, teacher_test)
    return [{"model": name, **fmt(intent_metrics(y, s))} for name, s in scores.items()], seconds


ABLATIONS = (("without IAT", {"iat": False}),
             ("without event reconstruction", {"recon": False}),
             ("without pretraining (same architecture, random init)", {"pretrained": False}))


def ablations(args, data, run, y, strategy_scores, timings) -> tuple[list[dict], dict]:
    """The ablation table: every variant retrained from each of ``--ablation-seeds`` seeds
    (each seed a cached stage, its timings added to ``timings``); and the CPU of each seed."""
    settings = settings_key(args, STAGE_SETTINGS + ("ablation_teacher_steps",
                                                    "ablation_distill_steps"))
    per_seed, cpus = [], {}
    for seed in range(args.seed, args.seed + args.ablation_seeds):
        stage = cached_stage(args.cache_dir, f"ablation-seed{seed}", settings,
                             lambda seed=seed: ablation_seed(args, data, run, y,
                                                             strategy_scores, seed))
        per_seed.append(stage["metrics"])
        suffix = f" (seed {seed})" if args.ablation_seeds > 1 else ""
        timings.update({f"{label}{suffix}": s for label, s in stage["timings"].items()})
        cpus[f"ablation seed {seed}"] = stage["cpu"]
    return ablation_rows(per_seed), cpus


def ablation_seed(args, data, run, y, strategy_scores, seed: int) -> dict:
    """Metrics of full PITuning and of each variant, each retraining teacher and student (with
    unlearning) at the ablation budget from ``seed``, and the seconds each teacher took.

    At the main run's budget and seed, full PITuning is the main run itself (its new modules
    drew from the random state the protocol left); otherwise it is retrained too, so that every
    row compares like with like.
    """
    t_steps, d_steps = ablation_budget(args)
    torch.manual_seed(seed)
    timings = {}
    if (t_steps, d_steps, seed) == (args.teacher_steps, args.distill_steps, args.seed):
        reference, none = strategy_scores["unlearning"], strategy_scores["none"]
        ab_run = run
    else:
        ab_run = Run(args, data, t_steps, d_steps, seed=seed)
        t_model, seconds = ab_run.teacher()
        s_model, _ = ab_run.student(t_model)
        p_out = ab_run.p_out(t_model)
        reference = ab_run.individual(s_model, p_out)[0]
        none = ab_run.individual(s_model, p_out, "none")[0]
        timings["ablation reference (full PITuning): population tuning"] = seconds
    metrics = {"full PITuning": intent_metrics(y, reference),
               "without unlearning (plain fine-tuning)": intent_metrics(y, none)}
    for name, kwargs in ABLATIONS:
        t_model, seconds = ab_run.teacher(**kwargs)
        s_model, _ = ab_run.student(t_model, iat=kwargs.get("iat", True))
        scores, _, _ = ab_run.individual(s_model, ab_run.p_out(t_model))
        metrics[name] = intent_metrics(y, scores)
        timings[f"ablation {name}: population tuning"] = seconds
    return {"metrics": {name: {k: float(v) for k, v in m.items()} for name, m in metrics.items()},
            "timings": timings}


if __name__ == "__main__":
    main()
