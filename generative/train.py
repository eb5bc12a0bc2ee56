"""Joint training of U-MASK and the DiT (U-MASK paper Alg. 1, eq. 19-20, 31-32).

One step: draw users and a task per user, build candidate/target masks (tasks.py), generate the
mask (eq. 5-18), noise X_0 (eq. 31), put the revealed entries back as the sampler will (eq. 35),
predict with the DiT given the weighted evidence M' * X_0 (eq. 17, 28), and minimise the masked
reconstruction loss (eq. 19/32) plus lambda_con * InfoNCE(F_short, F_long) (eq. 20).
``fit`` runs the loop, through ``accelerate`` when an Accelerator is passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from generative.completion import UMaskCompleter
from generative.dit.loss import masked_diffusion_loss
from generative.dit.sampler import clamp_evidence
from generative.tasks import task_masks
from generative.umask.losses import info_nce


@dataclass
class TrainConfig:
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    lambda_con: float = 0.1     # eq. 20
    t_power: float = 1.0        # t = floor(T_d * u ** (1 / t_power)): 1 = uniform, > 1 favours high noise
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 100


@dataclass
class LossOutput:
    loss: Tensor
    reconstruction: Tensor
    consistency: Tensor
    mean_ratio: Tensor


def training_loss(model: UMaskCompleter, values: Tensor, observed: Tensor, h: Tensor,
                  task_ids: Tensor, *, scored: Tensor | None = None, lambda_con: float = 0.1,
                  t_power: float = 1.0, generator: torch.Generator | None = None) -> LossOutput:
    """Eq. 19-20 for one batch. values: (B, C, T, H, W) in [0, 1]; observed/scored: (B, T, H, W)."""
    cfg = model.cfg
    x0 = model.to_model_space(values)                                       # (B, C, T, H, W)
    tm = task_masks(cfg.umask.tasks, task_ids, observed, scored)
    m = model.masks(h, task_ids, tm.candidates, stochastic=True, generator=generator)  # eq. 5-18
    target_mask = tm.target * (1 - m.hard)
    B = x0.shape[0]
    u = torch.rand(B, generator=generator) ** (1.0 / t_power)
    t = (u * cfg.schedule.train_steps).long().clamp(max=cfg.schedule.train_steps - 1).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    x_t = model.schedule.add_noise(x0, noise, t)                           # eq. 31
    x_t = clamp_evidence(x_t, x0, m.hard)                                   # sampler state, eq. 35
    evidence = m.weighted.unsqueeze(1) * x0                                 # eq. 28 weighted by eq. 17
    pred = model.dit(x_t, t, evidence, m.weighted, m.context, task_ids)
    rec = masked_diffusion_loss(pred, model.schedule.training_target(x0, noise), target_mask)
    con = info_nce(m.f_short, m.f_long, cfg.umask.infonce_temperature)      # eq. 20
    return LossOutput(loss=rec + lambda_con * con, reconstruction=rec.detach(),
                      consistency=con.detach(), mean_ratio=m.ratio.detach().mean())


def fit(model: UMaskCompleter, values, observed, h, cfg: TrainConfig, *, scored=None,
        accelerator=None, callback: Callable[[dict], None] | None = None) -> list[dict]:
    """Train on in-memory tensors; returns the logged history (one dict per ``log_every``)."""
    values = torch.as_tensor(values, dtype=torch.float32)
    observed = torch.as_tensor(observed, dtype=torch.float32)
    scored = observed if scored is None else torch.as_tensor(scored, dtype=torch.float32)
    h = torch.as_tensor(h, dtype=torch.float32)
    n = values.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 users to train, got {n}")
    rank = accelerator.process_index if accelerator is not None else 0
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * max(0.05, 1 - s / max(cfg.steps, 1)))
    if accelerator is not None:
        model, opt = accelerator.prepare(model, opt)
    core = accelerator.unwrap_model(model) if accelerator is not None else model
    device = next(core.parameters()).device
    n_tasks = core.cfg.umask.n_tasks
    history, t0, run = [], time.perf_counter(), {"loss": 0.0, "rec": 0.0, "con": 0.0}
    model.train()
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=gen)
        task_ids = torch.randint(0, n_tasks, (len(idx),), generator=gen)
        out = training_loss(core, values[idx].to(device), observed[idx].to(device),
                            h[idx].to(device), task_ids.to(device), scored=scored[idx].to(device),
                            lambda_con=cfg.lambda_con, t_power=cfg.t_power, generator=gen)
        opt.zero_grad(set_to_none=True)
        if accelerator is not None:
            accelerator.backward(out.loss)
        else:
            out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        run["loss"] += float(out.loss.detach())
        run["rec"] += float(out.reconstruction)
        run["con"] += float(out.consistency)
        if step % cfg.log_every == 0 or step == cfg.steps:
            k = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            rec = {"step": step, **{key: v / k for key, v in run.items()},
                   "ratios": core.umask.ratio.base_ratio().detach().tolist(),
                   "seconds": time.perf_counter() - t0}
            history.append(rec)
            if callback is not None:
                callback(rec)
            run = {key: 0.0 for key in run}
    model.eval()
    return history
