"""Cloud-side stages of PITuning: population tuning (eq. 5) and distillation (eq. 6-7).

Both loops take the model and an ``IntentSamples`` set, run a fixed number of optimiser steps
over shuffled batches (explicit ``torch.Generator``), and return the loss history.
``predict_logits`` and ``output_distribution`` (P_out of eq. 8) serve every later stage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from generative.intent.data import IntentSamples
from generative.intent.losses import distillation_loss, mask_events, population_loss
from generative.intent.model import IntentPredictor


@dataclass
class TrainConfig:
    steps: int = 300            # optimiser steps, one batch each
    batch_size: int = 32
    lr: float = 1e-3            # new modules: embeddings, IAT, MLP heads
    backbone_lr: float = 1e-4   # the (pretrained) transformer blocks; 0 freezes them
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    recon_weight: float = 1.0   # eq. 5 weight of L_M; 0 = "without event reconstruction"
    mask_rate: float = 0.15     # share of events masked for L_M
    alpha: float = 0.5          # eq. 7 (Table 4)
    temperature: float = 1.0    # eq. 6 epsilon (Table 4)
    warmup_steps: int = 0       # linear lr warm-up from 0 over this many steps
    schedule: str = "constant"  # after warm-up: "constant" or "cosine" (decay to 0 at steps)
    cache_teacher: bool | None = None  # distill: M_t once per window (None: if >= 1 epoch)
    seed: int = 0
    log_every: int = 50


def model_inputs(batch: IntentSamples, user_embeddings: torch.Tensor | None = None) -> dict:
    """Keyword inputs of ``IntentPredictor`` for a batch (h_u looked up by user index)."""
    inputs = batch.inputs()
    if user_embeddings is not None:
        inputs["user_embedding"] = user_embeddings[batch.user]
    return inputs


def _optimizer(model: IntentPredictor, config: TrainConfig) -> torch.optim.Optimizer:
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    if config.backbone_lr <= 0:
        for p in backbone:
            p.requires_grad_(False)
    others = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    groups = [{"params": others, "lr": config.lr}]
    if config.backbone_lr > 0:
        groups.append({"params": backbone, "lr": config.backbone_lr})
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base lr before optimiser step ``step`` (0-based): warm-up, then
    constant or cosine decay, lr_s = lr * 0.5 (1 + cos(pi (s - W) / (S - W))) for s >= W."""
    if config.schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {config.schedule!r}")
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    span = max(config.steps - config.warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * (step - config.warmup_steps) / span))


def _steps(samples: IntentSamples, config: TrainConfig, generator: torch.Generator):
    step = 0
    while True:
        for batch in samples.batches(config.batch_size, generator):
            if step >= config.steps:
                return
            step += 1
            yield step, batch


def _fit(model: nn.Module, samples: IntentSamples, config: TrainConfig, loss_fn, log,
         callback=None) -> list:
    if len(samples) == 0:
        raise ValueError("no training samples")
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    history, start = [], time.perf_counter()
    model.train()
    for step, batch in _steps(samples, config, generator):
        loss = loss_fn(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        history.append(float(loss.detach()))
        if log is not None and (step % config.log_every == 0 or step == config.steps):
            recent = history[-config.log_every:]
            log(f"step {step}/{config.steps} loss {sum(recent) / len(recent):.4f} "
                f"({time.perf_counter() - start:.0f}s)")
        if callback is not None:  # e.g. validation metrics; may switch to eval mode
            callback(step, model)
            model.train()
    model.eval()
    return history


def train_population(model: IntentPredictor, samples: IntentSamples, config: TrainConfig,
                     user_embeddings: torch.Tensor | None = None, log=None,
                     callback=None) -> list[float]:
    """Population-level tuning with L_pop = L_M + L_CE(m, L) (eq. 5, Alg. 1 lines 1-6)."""

    def loss_fn(batch: IntentSamples, generator: torch.Generator) -> torch.Tensor:
        inputs = model_inputs(batch, user_embeddings)
        logits = model(**inputs)  # (B, N_I)
        if config.recon_weight <= 0:
            return population_loss(logits, batch.target)
        masked, target_mask = mask_events(batch.event, batch.length, config.mask_rate,
                                          generator)  # Alg. 1 line 4
        inputs["event_masked"] = masked
        del inputs["event"]
        event_logits = model.reconstruction_logits(**inputs)  # (B, I, N_E), Alg. 1 lines 5-6
        return population_loss(logits, batch.target, event_logits, batch.event, target_mask,
                               config.recon_weight)

    return _fit(model, samples, config, loss_fn, log, callback)


def distill(student: IntentPredictor, teacher: IntentPredictor, samples: IntentSamples,
            config: TrainConfig, user_embeddings: torch.Tensor | None = None,
            log=None, callback=None) -> list[float]:
    """Train the small student on L_D = alpha KL + (1 - alpha) CE against the teacher (eq. 7).

    The teacher is frozen and in eval mode, so its logits M_t are a fixed function of the
    window: when the run sees at least one epoch they are computed once for every window
    (keyed by the target's row, ``position``) instead of once per batch.
    """
    teacher.eval()
    cached = None
    cache = config.cache_teacher
    if cache is None:
        cache = config.steps * config.batch_size >= len(samples)
    if cache:
        logits = predict_logits(teacher, samples, user_embeddings=user_embeddings)
        cached = torch.zeros(int(samples.position.max()) + 1, logits.shape[1])
        cached[samples.position] = logits

    def loss_fn(batch: IntentSamples, generator: torch.Generator) -> torch.Tensor:
        inputs = model_inputs(batch, user_embeddings)
        if cached is not None:
            teacher_logits = cached[batch.position]
        else:
            with torch.no_grad():
                teacher_logits = teacher(**inputs)  # M_t (B, N_I)
        return distillation_loss(student(**inputs), teacher_logits, batch.target,
                                 config.alpha, config.temperature)

    return _fit(student, samples, config, loss_fn, log, callback)


@torch.no_grad()
def predict_logits(model: IntentPredictor, samples: IntentSamples, batch_size: int = 256,
                   user_embeddings: torch.Tensor | None = None) -> torch.Tensor:
    """Intent logits (N, N_I) in eval mode."""
    model.eval()
    parts = [model(**model_inputs(batch, user_embeddings))
             for batch in samples.batches(batch_size)]
    if not parts:
        return torch.zeros(0, model.config.n_intents)
    return torch.cat(parts)


def output_distribution(logits: torch.Tensor) -> torch.Tensor:
    """P_out (eq. 8): the share of each intent among the predictor's top-1 outputs."""
    counts = torch.bincount(logits.argmax(dim=1), minlength=logits.shape[1]).double()
    return counts / counts.sum().clamp(min=1.0)
