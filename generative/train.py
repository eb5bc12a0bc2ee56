"""Joint training of U-MASK and the DiT (U-MASK paper Alg. 1, eq. 19-20, 31-32).

One step: draw users and a task per user, build candidate/target masks (tasks.py), generate the
mask (eq. 5-18), noise X_0 (eq. 31), put the revealed entries back as the sampler will (eq. 35),
predict with the DiT given the weighted evidence M' * X_0 (eq. 17, 28), and minimise the masked
reconstruction loss (eq. 19/32) plus lambda_con * InfoNCE(F_short, F_long) (eq. 20).
``fit`` runs the loop, through ``accelerate`` when an Accelerator is passed. With
``val_fraction`` > 0 it holds out that share of users, scores eq. 19/32 on them every
``log_every`` steps with fixed noise (so checkpoints are compared on the same draws) and ends with
the weights of the best validation step: on one day of ~1,000 users the DiT overfits within a few
thousand steps. With ``ema_decay`` > 0 the exponential moving average of the weights is the model
validated and kept (``WeightAverage``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
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
    h_noise: float = 0.0        # std of Gaussian noise added to h_u in training (regulariser)
    val_fraction: float = 0.0   # users held out for early stopping; 0 trains on all, no restore
    val_repeats: int = 4        # noise draws per validation user and task
    ema_decay: float = 0.0      # > 0: validate and keep an exponential moving average of the weights


@dataclass
class LossOutput:
    loss: Tensor
    reconstruction: Tensor
    consistency: Tensor
    mean_ratio: Tensor


def training_loss(model: UMaskCompleter, values: Tensor, observed: Tensor, h: Tensor,
                  task_ids: Tensor, *, scored: Tensor | None = None, lambda_con: float = 0.1,
                  t_power: float = 1.0, timestep: int | None = None,
                  generator: torch.Generator | None = None) -> LossOutput:
    """Eq. 19-20 for one batch. values: (B, C, T, H, W) in [0, 1]; observed/scored: (B, T, H, W).

    ``timestep`` fixes the diffusion step of every row (default: drawn per row).
    """
    cfg = model.cfg
    x0 = model.to_model_space(values)                                       # (B, C, T, H, W)
    tm = task_masks(cfg.umask.tasks, task_ids, observed, scored)
    m = model.masks(h, task_ids, tm.candidates, stochastic=True, generator=generator)  # eq. 5-18
    target_mask = tm.target * (1 - m.hard)
    x0 = x0 - model.evidence_offset(x0, m.relaxed, task_ids, m.weighted)   # 0 unless task.centre
    B = x0.shape[0]
    u = torch.rand(B, generator=generator) ** (1.0 / t_power)
    t = (u * cfg.schedule.train_steps).long().clamp(max=cfg.schedule.train_steps - 1).to(x0.device)
    if timestep is not None:
        t = torch.full_like(t, timestep)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    x_t = model.schedule.add_noise(x0, noise, t)                           # eq. 31
    x_t = clamp_evidence(x_t, x0, m.hard)                                   # sampler state, eq. 35
    evidence = m.weighted.unsqueeze(1) * x0                                 # eq. 28 weighted by eq. 17
    pred = model.dit(x_t, t, evidence, m.weighted, m.context, task_ids)
    rec = masked_diffusion_loss(pred, model.schedule.training_target(x0, noise), target_mask)
    con = info_nce(m.f_short, m.f_long, cfg.umask.infonce_temperature)      # eq. 20
    return LossOutput(loss=rec + lambda_con * con, reconstruction=rec.detach(),
                      consistency=con.detach(), mean_ratio=m.ratio.detach().mean())


@torch.no_grad()
def validation_loss(model: UMaskCompleter, values: Tensor, observed: Tensor, h: Tensor,
                    scored: Tensor, *, repeats: int = 4, seed: int = 0,
                    batch_size: int = 512) -> float:
    """Masked reconstruction loss (eq. 19/32) at the highest noise level, over every user, task
    and ``repeats`` draws of mask and noise.

    From pure noise the denoiser's X_0 prediction is its estimate of E[X_0 | evidence, h_u, tau]:
    the one-step answer that few-step DDIM starts from and that the RMSE of the sample mean
    scores. (Averaged over all t, the loss is dominated by easy low-noise steps and kept falling
    on netfp while the completion error rose.) The generator is re-seeded on every call, so
    successive checkpoints see identical draws and differ only through the weights.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    n, n_tasks = values.shape[0], model.cfg.umask.n_tasks
    rows = torch.arange(n).repeat(repeats * n_tasks)
    tasks = torch.arange(n_tasks).repeat_interleave(n).repeat(repeats)
    total = 0.0
    for start in range(0, len(rows), batch_size):
        idx, tid = rows[start:start + batch_size], tasks[start:start + batch_size]
        out = training_loss(model, values[idx].to(device), observed[idx].to(device),
                            h[idx].to(device), tid.to(device), scored=scored[idx].to(device),
                            lambda_con=0.0, timestep=model.cfg.schedule.train_steps - 1,
                            generator=gen)
        total += float(out.reconstruction) * len(idx)
    if was_training:
        model.train()
    return total / len(rows)


class WeightAverage:
    """Exponential moving average of the trainable weights, as DiT training keeps one
    (Peebles & Xie use decay 0.9999): theta_ema <- d theta_ema + (1 - d) theta after every step,
    with d = min(decay, (1 + n) / (10 + n)) after n updates so early averages are not dominated
    by the random initialisation."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach(), 1.0 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module, weights: dict[str, Tensor] | None = None) -> None:
        """Write ``weights`` (default: the averaged ones) into the model's parameters."""
        source = self.shadow if weights is None else weights
        for name, p in model.named_parameters():
            p.copy_(source[name])

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Swap the averaged weights in for the duration of the block."""
        live = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.copy_to(model)
        try:
            yield
        finally:
            self.copy_to(model, live)


def split_validation(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train rows, validation rows) of ``n`` users; validation gets round(fraction * n) >= 1."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    n_val = max(1, round(fraction * n))
    if n - n_val < 2:
        raise ValueError(f"val_fraction {fraction} leaves {n - n_val} of {n} users to train on; "
                         "need at least 2")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:], perm[:n_val]


def fit(model: UMaskCompleter, values, observed, h, cfg: TrainConfig, *, scored=None,
        accelerator=None, callback: Callable[[dict], None] | None = None) -> list[dict]:
    """Train on in-memory tensors; returns the logged history (one dict per ``log_every``).

    With ``cfg.val_fraction`` > 0 each record also has ``val_loss`` and ``best_step``, and the
    model ends with the weights of ``best_step``.
    """
    values = torch.as_tensor(values, dtype=torch.float32)
    observed = torch.as_tensor(observed, dtype=torch.float32)
    scored = observed if scored is None else torch.as_tensor(scored, dtype=torch.float32)
    h = torch.as_tensor(h, dtype=torch.float32)
    validation = None
    if cfg.val_fraction > 0:
        rows, val_rows = split_validation(values.shape[0], cfg.val_fraction, cfg.seed)
        validation = (values[val_rows], observed[val_rows], h[val_rows], scored[val_rows])
        values, observed, h, scored = values[rows], observed[rows], h[rows], scored[rows]
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
    best = {"loss": float("inf"), "step": 0, "state": None}
    ema = WeightAverage(core, cfg.ema_decay) if cfg.ema_decay > 0 else None
    averaged = (lambda: ema.applied(core)) if ema is not None else nullcontext
    model.train()
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=gen)
        task_ids = torch.randint(0, n_tasks, (len(idx),), generator=gen)
        hb = h[idx]
        if cfg.h_noise > 0:   # blurs user identity so the DiT cannot memorise users through h_u
            hb = hb + cfg.h_noise * torch.randn(hb.shape, generator=gen)
        out = training_loss(core, values[idx].to(device), observed[idx].to(device),
                            hb.to(device), task_ids.to(device), scored=scored[idx].to(device),
                            lambda_con=cfg.lambda_con, t_power=cfg.t_power, generator=gen)
        opt.zero_grad(set_to_none=True)
        if accelerator is not None:
            accelerator.backward(out.loss)
        else:
            out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(core)
        run["loss"] += float(out.loss.detach())
        run["rec"] += float(out.reconstruction)
        run["con"] += float(out.consistency)
        if step % cfg.log_every == 0 or step == cfg.steps:
            k = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            rec = {"step": step, **{key: v / k for key, v in run.items()},
                   "ratios": core.umask.ratio.base_ratio().detach().tolist(),
                   "seconds": time.perf_counter() - t0}
            if validation is not None:
                with averaged():   # the averaged weights are the ones validated and kept
                    rec["val_loss"] = validation_loss(core, *validation,
                                                      repeats=cfg.val_repeats, seed=cfg.seed)
                    if rec["val_loss"] < best["loss"]:
                        best.update(loss=rec["val_loss"], step=step, state={
                            k: v.detach().clone() for k, v in core.state_dict().items()})
                rec["best_step"] = best["step"]
            history.append(rec)
            if callback is not None:
                callback(rec)
            run = {key: 0.0 for key in run}
    if best["state"] is not None:
        core.load_state_dict(best["state"])
    elif ema is not None:
        ema.copy_to(core)
    model.eval()
    return history
