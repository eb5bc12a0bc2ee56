"""Tables of bench_umask_months.py: errors, uncertainty, the issue's bars, and cost."""

from __future__ import annotations

import statistics

from _report import markdown_table
from bench_umask import CONTROL, MATCHED, TASKS, fmt
from umask_anchors import ANCHORS

SPREAD = "; point and CRPS passes, with the baselines"
BASELINES = ["historical average", "seasonal naive", "population mean"]
NOISE = "U-MASK, h_u = noise"
STANDIN = "U-MASK, stand-in h_u"
RQ4 = (NOISE, STANDIN)


NOTES = """
How these settings were chosen and how to read the tables:
- Chosen on validation (`--validation`: a fifth of seed 0's training users scored, test users
  unseen; 2026-12-03). Tessellation: k-means place clusters against a 3 x 3 lat/lon grid, both
  at 1000 steps. U-MASK / HA RMSE over the three tasks was 1.011 / 1.010 / 1.000 (visits) and
  1.022 / 1.004 / 1.036 (presence) with clusters, 1.014 / 1.007 / 1.091 and 1.031 / 0.998 /
  1.226 with the grid, whose min-max bins put half the check-ins in its centre cell (clusters:
  at most 26% in one): clusters kept. Both models kept their step-200 weights in both
  runs (validation loss checked every 100 steps), so the reported run trains 400 steps.
  Centring every task, the EMA and the one-step DDIM point forecast are the netfp choices,
  not validated again here. The validation runs fitted the clusters on every event; the
  reported run fits them on the history weeks only (no target-week place shapes a cell).
- The tensor is very sparse: 0.36% of the visit entries are non-zero (a check-in is one
  category in one cell in one 3-hour slot). RMSE and MAE are dominated by the zeros, which the
  per-user historical average already predicts well, and the 0.8x-of-HA bar asks for a large
  gain on a few non-zero entries.
- CRPS and coverage use 16 DDIM-10 samples per user (a one-step DDIM returns the posterior
  mean for every noise draw, so its samples have no spread). The CRPS of a point forecast is
  its absolute error, so "CRPS U-MASK / anchor CRPS (point anchor: MAE)" compares U-MASK's
  samples with a point anchor on one scale (CSDI, which samples, by its own CRPS). A zero
  target is inside an interval only when its lower end is 0, so the coverage of these
  zero-inflated targets says how often the samples put mass exactly on zero.
- Anchors: SAITS and PatchTST from PyPOTS 1.3 (2 layers, d_model 64, Adam, MAE loss, early
  stopping on the validation users' long-term window). None accepts a per-user input, so none
  is shown with h_u. CSDI (`--anchors CSDI`, 16 samples, as many as U-MASK's CRPS pass) needs
  a GPU: on a 2-core CPU with 24 GiB its process at batch 32 was killed at 22.7 GiB, and at
  batch 4 one seed of this budget would take about 33 hours (`--anchor-cost`, BENCHMARKS
  `umask-anchor-cost`). On an H200 (2026-12-04, 3 seed processes sharing the GPU) it
  trained at about 7 s an epoch at T = 448, its validation loss still falling at epoch 15:
  a GPU machine runs it with `--anchors-only` from `--save-tensors` tensors, one seed at a
  time, and `--anchor-results` joins its rows, measured on the device the header names.
- RQ4: "h_u = noise" trains and tests U-MASK with every user's h_u replaced by a Gaussian
  vector with h_u's per-dimension mean and std, fixed per user and independent of behaviour;
  "stand-in h_u" uses the histogram embedding of the same history slots (generative.standin).
- "best anchor" is the anchor with the lower mean RMSE on the scored users, which flatters the
  anchors.
- Times are on a 2-core CPU shared by the seed processes. U-MASK's sampling time holds the
  point pass (32 DDIM-1 samples), the CRPS pass (16 DDIM-10 samples) and the baselines, for
  U-MASK, the control and the matched control; the anchors' holds one point prediction
  (CSDI: its samples), on the device their header entry names.
"""


def methods(results: dict) -> list[str]:
    """Row order: U-MASK and its RQ4 variants, the controls, the anchors, the baselines."""
    present = results[next(iter(results))]["tasks"][TASKS[0]]
    order = ["U-MASK", *RQ4, CONTROL, MATCHED, *ANCHORS, *BASELINES]
    return [m for m in order if m in present]


def values(results: dict, task: str, method: str, group: str, metric: str) -> list[float]:
    return [r["tasks"][task][method][group][metric] for r in results.values()
            if metric in r["tasks"][task][method].get(group, {})]


def error_table(results: dict, group: str) -> str:
    rows = []
    for method in methods(results):
        row = {"method": method}
        for task in TASKS:
            for metric in ("rmse", "mae"):
                row[f"{task} {metric.upper()}"] = fmt(values(results, task, method, group, metric))
        rows.append(row)
    return markdown_table(rows)


def uncertainty_table(results: dict, group: str) -> str:
    rows = []
    for method in methods(results):
        if not values(results, TASKS[0], method, group, "crps"):
            continue
        row = {"method": method}
        for task in TASKS:
            row[f"{task} CRPS"] = fmt(values(results, task, method, group, "crps"))
            row[f"{task} in 50% / 90%"] = (
                f"{statistics.mean(values(results, task, method, group, 'cover50')):.3f} / "
                f"{statistics.mean(values(results, task, method, group, 'cover90')):.3f}")
        rows.append(row)
    return markdown_table(rows)


def ratio(results: dict, task: str, group: str, a: str, b: str,
          metric: str | tuple[str, str] = "rmse") -> tuple[str, str]:
    """(mean ± std of a / b over seeds, "wins/seeds" where a / b < 1); ``metric`` may name
    a's and b's metrics apart."""
    metric_a, metric_b = (metric, metric) if isinstance(metric, str) else metric
    pairs = list(zip(values(results, task, a, group, metric_a),
                     values(results, task, b, group, metric_b), strict=True))
    if any(y == 0 for _, y in pairs):
        return "n/a (zero error)", "-"
    r = [x / y for x, y in pairs]
    return fmt(r), f"{sum(v < 1 for v in r)}/{len(r)}"


def bars_table(results: dict, group: str) -> str:
    present = methods(results)
    anchors = [a for a in ANCHORS if a in present]
    rows = []
    for task in TASKS:
        row = {"task": task}
        for label, other in [("HA", "historical average"), ("control", CONTROL),
                             ("matched", MATCHED), ("pop. mean", "population mean"),
                             ("h_u = noise", NOISE)]:
            if other in present:
                row[f"U-MASK / {label}"], row[f"wins vs {label}"] = ratio(
                    results, task, group, "U-MASK", other)
        if anchors:
            best = min(anchors, key=lambda a: statistics.mean(
                values(results, task, a, group, "rmse")))
            row["best anchor"] = best
            row["U-MASK / best anchor"], row["wins vs anchor"] = ratio(
                results, task, group, "U-MASK", best)
            sampled = bool(values(results, task, best, group, "crps"))
            row["CRPS U-MASK / anchor CRPS (point anchor: MAE)"] = ratio(
                results, task, group, "U-MASK", best, ("crps", "crps" if sampled else "mae"))[0]
        rows.append(row)
    return markdown_table(rows)


def anchor_text(results: dict) -> str:
    """Each anchor's device and budget, as the run that fitted it recorded them (the first
    seed that records it)."""
    described: dict[str, dict] = {}
    for r in results.values():
        for name, options in r.get("anchors", {}).items():
            described.setdefault(name, options)
    parts = [f"{name} (not recorded)" for name in methods(results)
             if name in ANCHORS and name not in described]
    for name, o in described.items():
        parts.append(f"{name} ({o['device']}"
                     + (", an `--anchors-only` run joined by `--anchor-results`"
                        if "joined" in o else "")
                     + f", up to {o['epochs']} epochs, patience {o['patience']}"
                     + (f", batch {o['batch_size']}" if "batch_size" in o else "")
                     + (f", {o['samples']} samples" if "samples" in o else "") + ")")
    return "; ".join(parts) or "none"


def cost_table(results: dict) -> str:
    rows = []
    for seed, r in results.items():
        row = {"seed": seed, "peak RSS (MB)": f"{r['peak_rss_mb']:.0f}"}
        row.update({f"peak GPU {name} (MB)": f"{o['peak_gpu_mb']:.0f}"
                    for name, o in r.get("anchors", {}).items() if "peak_gpu_mb" in o})
        row.update({f"train {k} (s)": f"{v:.0f}" for k, v in r["train_seconds"].items()})
        row.update({f"sample {k} (s, 3 tasks{SPREAD if k.startswith('U-MASK') else ''})":
                    f"{sum(v.values()):.1f}"
                    for k, v in r["sample_seconds"].items()})
        rows.append(row)
    return markdown_table(rows)


def render(data, layout, results: dict, args) -> str:
    n, c, t, h, w = data.values.shape
    tasks = layout.tasks()
    split = ("VALIDATION: scored on a fifth of each seed's training users, test users unseen"
             if args.validation else "80/20 user split per seed")
    kept = "; ".join(f"{name} {[r['best_step'][name] for r in results.values()]}"
                     for name in ("U-MASK", CONTROL))
    head = (
        f"**{data.name}**: N = {n} users, tensor (C, T, H, W) = {(c, t, h, w)}: "
        f"{layout.weeks} weeks of {layout.slot_hours}-hour slots, cells = "
        f"{'k-means place clusters' if layout.spatial == 'clusters' else 'a lat/lon grid'} "
        f"({h} x {w}). Tasks: short term = the next {tasks[0].horizon} slots (a day), long "
        f"term = the last {tasks[1].horizon} slots ({layout.long_weeks} weeks), cold start = "
        f"the same weeks from evidence capped at {tasks[2].max_ratio:.3f} of the coordinates "
        f"(initial {tasks[2].init_ratio:.3f}: about {layout.cold_days:g} days of the history). "
        f"{len(results)} seeds ({', '.join(map(str, results))}), {split}. Preset "
        f"`{args.preset}`, DiT patch {args.patch_slots} slots, up to {args.steps} steps at "
        f"batch {args.batch_size}, keeping the lowest validation loss ({args.val_fraction:.0%} "
        f"of the training users, every {args.val_every} steps; kept: {kept}), EMA {args.ema}, "
        f"centred tasks: {', '.join(args.centre) or 'none'}; {args.samples} DDIM-"
        f"{args.eval_steps} samples per user (RMSE of their mean, MAE of their median), and "
        f"{args.spread_samples} DDIM-{args.spread_steps} samples for CRPS and coverage. "
        f"h_u: {data.embedding}. Anchors (PyPOTS): {anchor_text(results)}. Errors in "
        "normalised units ([0, 1] per channel) on each task's target window; mean ± std over "
        "seeds.\n")
    body = [head]
    for group in data.groups:
        body.append(f"\nErrors, channel group `{group}`:\n\n" + error_table(results, group))
    for group in data.groups:
        body.append(f"\nUncertainty of the sampled completions, group `{group}` (CRPS by "
                    "properscoring; share of targets inside the central 50% / 90% sample "
                    "intervals, mean over seeds):\n\n" + uncertainty_table(results, group))
    for group in data.groups:
        body.append(f"\nRMSE ratios (< 1: U-MASK better), group `{group}`, mean ± std over "
                    "seeds, with the seeds where U-MASK wins:\n\n" + bars_table(results, group))
    body.append("\nCost per seed (1 torch thread per seed process, CPU shared by "
                f"{args.jobs} seed processes; joined anchors: on their own device, as the "
                "header says):\n\n" + cost_table(results))
    return "\n".join(body) + "\n" + NOTES
