"""Scoring completions the way the U-MASK paper's tables do (RMSE and MAE per channel group).

``compare`` runs U-MASK, the fixed-mask control and the statistical baselines on the same users,
task and target coordinates, so their numbers are measured side by side.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from generative.baselines import historical_average, population_mean, seasonal_naive
from generative.completion import UMaskCompleter
from generative.config import TaskConfig
from generative.tasks import TaskMasks, task_masks
from generative.umask.topk import fixed_random_mask
from generative.uncertainty import sample_scores


def group_errors(pred: Tensor, truth: Tensor, target_mask: Tensor,
                 groups: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """{group: {"rmse", "mae"}} over the target coordinates of the group's channels."""
    out = {}
    m = target_mask.unsqueeze(1).to(pred.dtype)
    for name, idx in groups.items():
        err = (pred[:, idx] - truth[:, idx]) * m
        count = float(m.sum()) * len(idx)
        if count == 0:
            continue
        out[name] = {"rmse": math.sqrt(float((err ** 2).sum()) / count),
                     "mae": float(err.abs().sum()) / count}
    return out


def sample_errors(samples: Tensor, truth: Tensor, target_mask: Tensor,
                  groups: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """{group: {"rmse", "mae"}} of an ensemble (S, N, C, T, H, W): RMSE of the sample mean (the
    squared-error-optimal point forecast), MAE of the sample median (the absolute-error one)."""
    rmse = group_errors(samples.mean(0), truth, target_mask, groups)
    mae = group_errors(samples.median(0).values, truth, target_mask, groups)
    return {g: {"rmse": rmse[g]["rmse"], "mae": mae[g]["mae"]} for g in rmse}


def baseline_evidence(tm: TaskMasks, task: TaskConfig, seed: int) -> Tensor:
    """What the non-U-MASK methods see: the whole history window for warm tasks, the fixed-mask
    control's uniform random budget (rho_tau's initial value) for cold start."""
    if task.cold:
        return fixed_random_mask(tm.candidates, task.init_ratio,
                                 torch.Generator().manual_seed(seed))
    return tm.candidates


def compare(models: dict[str, UMaskCompleter], values: Tensor, observed: Tensor, h: Tensor,
            task: str, *, train_values: Tensor, train_scored: Tensor, groups: dict[str, list[int]],
            scored: Tensor | None = None, season: int = 24, n_samples: int = 5,
            sampler: str = "ddim", steps: int | None = 20, seed: int = 0,
            budget_matched: tuple[str, str] | None = None,
            uncertainty: tuple[int, int] | None = None
            ) -> dict[str, dict[str, dict[str, float]]]:
    """Errors of every model and baseline for ``task`` on test users: {method: {group: metrics}}.

    Baselines see the whole history window (all candidates) for warm tasks; for cold start they
    see the same fixed random budget as the fixed-mask control.
    ``budget_matched=(adaptive, fixed)`` adds the row "<fixed> (matched budget)": the fixed-mask
    model completing from uniform random evidence of the same size as the adaptive model's mean
    revealed budget, so a gain of the adaptive mask cannot come from revealing more.
    ``uncertainty=(steps, n)`` adds each model's CRPS and 50% / 90% interval coverage from n
    DDIM samples of ``steps`` steps drawn from the same evidence (a one-step DDIM returns the
    posterior mean for every noise draw, so its samples carry no spread).
    """
    scored = observed if scored is None else scored
    any_model = next(iter(models.values()))
    tasks = any_model.cfg.umask.tasks
    tid = any_model.cfg.umask.task_index(task)
    cfg_task = tasks[tid]
    ids = torch.full((values.shape[0],), tid, dtype=torch.long)
    tm = task_masks(tasks, ids, observed, scored)
    results = {}
    runs = [(name, model, None) for name, model in models.items()]
    if budget_matched is not None:
        adaptive, fixed = budget_matched
        runs.append((f"{fixed} (matched budget)", models[fixed], adaptive))
    for name, model, match in runs:
        evidence_override = None
        if match is not None:
            ratio = results[match]["_evidence_ratio"]["mean"]
            evidence_override = fixed_random_mask(tm.candidates, ratio,
                                                  torch.Generator().manual_seed(seed))
        comp = model.complete(values, observed, h, task, n_samples=n_samples, sampler=sampler,
                              steps=steps, seed=seed, evidence_mask=evidence_override)
        results[name] = sample_errors(comp.samples, values, tm.target, groups)
        if uncertainty is not None:
            spread = model.complete(values, observed, h, task, n_samples=uncertainty[1],
                                    sampler=sampler, steps=uncertainty[0], seed=seed,
                                    evidence_mask=evidence_override)
            for g, scores in sample_scores(spread.samples, values, tm.target, groups).items():
                results[name][g].update(scores)
        results[name]["_evidence_ratio"] = {"mean": float(comp.evidence_mask.sum((1, 2, 3)).mean()
                                                          / tm.candidates[0].numel())}
    evidence = baseline_evidence(tm, cfg_task, seed)
    pop = population_mean(train_values, train_scored)
    ha = historical_average(values, evidence, pop)
    history = values.shape[2] - cfg_task.horizon
    period = season if history >= season else cfg_task.horizon
    sn = seasonal_naive(values, evidence, period, ha)
    results["historical average"] = group_errors(ha, values, tm.target, groups)
    results["seasonal naive"] = group_errors(sn, values, tm.target, groups)
    results["population mean"] = group_errors(pop.unsqueeze(0).expand_as(values), values,
                                              tm.target, groups)
    return results
