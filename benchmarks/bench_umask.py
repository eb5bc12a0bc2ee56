"""U-MASK + DiT completion quality and sampler speed (U-MASK paper Tables 1-6 layout, RQ2).

For every dataset and seed: split users 80/20, train U-MASK (adaptive masks) and the RQ2
fixed-mask control (same backbone and encoder, uniform random masks of a fixed ratio) with the
same budget, then score short-term, long-term and cold-start completion of the held-out users
beside historical average, seasonal naive and the population mean, on the same target
coordinates. Then time DDIM (1/10/20 steps) against DDPM (all steps) on this CPU.

    python benchmarks/bench_umask.py --seeds 0 1 2 --steps 1000
    python benchmarks/bench_umask.py --seeds 0 1 2 --steps 1000 --simulated   # adds simulated data

Writes the `umask` section of BENCHMARKS.md and benchmarks/figures/umask_masks_*.png.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import markdown_table, write_section  # noqa: E402
from umask_data import BenchData, netfp, simulated  # noqa: E402
from umask_figure import plot_masks  # noqa: E402

from generative.completion import UMaskCompleter  # noqa: E402
from generative.config import DIT_PRESETS  # noqa: E402
from generative.evaluate import compare, group_errors  # noqa: E402
from generative.tasks import task_masks  # noqa: E402
from generative.train import TrainConfig, fit  # noqa: E402

TASKS = ["short_term", "long_term", "cold_start"]
MAIN = ["U-MASK", "fixed-mask control", "historical average", "seasonal naive", "population mean"]


def train_pair(data: BenchData, train_idx: torch.Tensor, seed: int, args) -> dict:
    V, O, H = (torch.from_numpy(data.values), torch.from_numpy(data.observed),
               torch.from_numpy(data.h))
    models = {}
    for name, policy in [("U-MASK", "adaptive"), ("fixed-mask control", "fixed")]:
        C, T, Hh, W = V.shape[1:]
        cfg = DIT_PRESETS[args.preset](channels=C, n_slots=T, height=Hh, width=W,
                                       patch=(data_patch(T), Hh, W), user_dim=H.shape[1],
                                       mask_policy=policy)
        cfg.channel_names, cfg.channel_groups = data.channel_names, data.groups
        torch.manual_seed(seed)
        model = UMaskCompleter(cfg)
        t0 = time.perf_counter()
        fit(model, V[train_idx], O[train_idx], H[train_idx],
            TrainConfig(steps=args.steps, batch_size=64, seed=seed, log_every=args.steps))
        model.train_seconds = time.perf_counter() - t0
        model.set_reference(H[train_idx][:256])
        models[name] = model
        print(f"  trained {name} in {model.train_seconds:.0f}s; rho_tau = "
              f"{[round(r, 3) for r in model.umask.ratio.base_ratio().tolist()]}", flush=True)
    return models


def data_patch(T: int) -> int:
    return 1 if T <= 24 else 2


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def run_dataset(data: BenchData, args) -> tuple[str, dict]:
    V, O, H = (torch.from_numpy(data.values), torch.from_numpy(data.observed),
               torch.from_numpy(data.h))
    n = V.shape[0]
    results = {}      # (seed, task) -> compare() output
    first_models, first_test = None, None
    train_secs = []
    for seed in args.seeds:
        print(f"{data.name}: seed {seed}", flush=True)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        test, train = perm[: n // 5], perm[n // 5:]
        models = train_pair(data, train, seed, args)
        train_secs += [m.train_seconds for m in models.values()]
        for task in TASKS:
            results[(seed, task)] = compare(
                models, V[test], O[test], H[test], task, train_values=V[train],
                train_scored=O[train], groups=data.groups, season=data.season,
                n_samples=args.samples, steps=args.eval_steps, seed=seed)
        if first_models is None:
            first_models, first_test = models, test
    body = [f"**{data.name}**: N = {n} users, tensor (C, T, H, W) = {tuple(V.shape[1:])}, "
            f"{len(args.seeds)} seeds ({', '.join(map(str, args.seeds))}), 80/20 user split per "
            f"seed, preset `{args.preset}`, {args.steps} training steps per model "
            f"(median {statistics.median(train_secs):.0f} s), completion = median of "
            f"{args.samples} DDIM-{args.eval_steps} samples. h_u: {data.embedding}. "
            "Errors in normalised units ([0, 1] per channel), on the target window of each task; "
            "mean ± std over seeds.\n"]
    for group in data.groups:
        rows = []
        for method in MAIN:
            row = {"method": method}
            for task in TASKS:
                per_seed = [results[(s, task)][method][group] for s in args.seeds]
                row[f"{task} RMSE"] = fmt([r["rmse"] for r in per_seed])
                row[f"{task} MAE"] = fmt([r["mae"] for r in per_seed])
            rows.append(row)
        body.append(f"\nChannel group `{group}`:\n\n" + markdown_table(rows))
    ratio_rows = []
    for task in TASKS:
        for group in data.groups:
            def rmse(method, s, task=task, group=group):
                return results[(s, task)][method][group]["rmse"]
            vs_ha = [rmse("U-MASK", s) / rmse("historical average", s) for s in args.seeds]
            vs_fx = [rmse("U-MASK", s) / rmse("fixed-mask control", s) for s in args.seeds]
            ev = [results[(s, task)]["U-MASK"]["_evidence_ratio"]["mean"] for s in args.seeds]
            evf = [results[(s, task)]["fixed-mask control"]["_evidence_ratio"]["mean"]
                   for s in args.seeds]
            ratio_rows.append({
                "task": task, "group": group,
                "RMSE U-MASK / HA": fmt(vs_ha),
                "beats HA (seeds)": f"{sum(r < 1 for r in vs_ha)}/{len(vs_ha)}",
                "RMSE U-MASK / control": fmt(vs_fx),
                "beats control (seeds)": f"{sum(r < 1 for r in vs_fx)}/{len(vs_fx)}",
                "evidence ratio U-MASK / control": f"{statistics.mean(ev):.3f} / "
                                                   f"{statistics.mean(evf):.3f}"})
    body.append("\nRatios (< 1: U-MASK better), per seed then mean ± std; evidence ratio = "
                "revealed coordinates / (T H W):\n\n" + markdown_table(ratio_rows))
    body.append(speed_table(data, first_models["U-MASK"], V[first_test], O[first_test],
                            H[first_test], args))
    fig = plot_masks(first_models["U-MASK"], V[first_test], O[first_test], H[first_test],
                     Path(__file__).resolve().parent / "figures" /
                     f"umask_masks_{'netfp' if 'netfp' in data.name else 'simulated'}.png",
                     title=data.name)
    body.append(f"\nFig. 8 analogue (learned masks per task, seed {args.seeds[0]}): "
                f"`{fig.relative_to(Path(__file__).resolve().parents[1])}`.\n")
    return "\n".join(body), results


def speed_table(data: BenchData, model: UMaskCompleter, V, O, H, args) -> str:
    task = "short_term"
    tid = model.cfg.umask.task_index(task)
    tm = task_masks(model.cfg.umask.tasks, torch.full((V.shape[0],), tid), O)
    rows, base = [], None
    for sampler, steps in [("ddpm", None), ("ddim", 20), ("ddim", 10), ("ddim", 1)]:
        times, errs = [], []
        for rep in range(args.speed_repeats):
            t0 = time.perf_counter()
            out = model.complete(V, O, H, task, n_samples=1, sampler=sampler, steps=steps,
                                 seed=rep, batch_size=V.shape[0])
            times.append(time.perf_counter() - t0)
            errs.append(group_errors(out.median, V, tm.target, {"all": list(range(V.shape[1]))})
                        ["all"]["rmse"])
        t = statistics.median(times)
        rmse = statistics.mean(errs)
        n_steps = steps or model.cfg.schedule.train_steps
        if base is None:
            base = (t, rmse)
        rows.append({"sampler": f"{sampler.upper()} {n_steps} steps",
                     "ms / user": f"{1000 * t / V.shape[0]:.2f}",
                     "users / s": f"{V.shape[0] / t:.1f}",
                     "speed-up vs DDPM": f"{base[0] / t:.1f}x",
                     "short-term RMSE (1 sample)": f"{rmse:.4f}",
                     "RMSE vs DDPM": f"{rmse / base[1]:.3f}"})
    return (f"\nSampler speed on this CPU ({torch.get_num_threads()} torch threads, one batch of "
            f"{V.shape[0]} test users, one sample each, median of {args.speed_repeats} runs; "
            "RMSE mean over those runs):\n\n" + markdown_table(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--preset", default="umask-small")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--eval-steps", type=int, default=10)
    ap.add_argument("--speed-repeats", type=int, default=3)
    ap.add_argument("--embedding", choices=["uscope", "standin"], default="uscope")
    ap.add_argument("--simulated", action="store_true", help="also run a simulated population")
    ap.add_argument("--sim-users", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sections = []
    text, _ = run_dataset(netfp(args.embedding), args)
    sections.append(text)
    if args.simulated:
        text, _ = run_dataset(simulated(args.sim_users, "standin"), args)
        sections.append("\n### Simulated population (SIMULATED data, not real)\n\n" + text)
    body = "\n".join(sections)
    print(body)
    if not args.no_write:
        write_section("umask", "U-MASK + DiT completion (generative/)", body)


if __name__ == "__main__":
    main()
