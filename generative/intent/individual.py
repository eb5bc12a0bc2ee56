"""Device-side stage of PITuning (section 3.3, Alg. 1 "Individual-level tuning").

For each user: the forgotten set F = F_dyn U F_sta (eq. 8-10), adaptive unlearning with
L_un (eq. 11) when F is not empty, then fine-tuning on the user's own data. The shared student
stays frozen; a user's whole state is an adapter, the few readout tensors in ``ADAPTER_PARAMS``
(intent embeddings E_i and the output layer W_2, b_2), applied with ``torch.func.functional_call``.
Strategies ``none``, ``focal`` and ``oversample`` replace unlearning by the class-imbalance
baselines of the paper's Fig. 8.

Option beyond the paper (off by default, see ``IndividualConfig``): a label-shift
initialisation of b_2 (Saerens et al. 2002) before unlearning and fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.func import functional_call

from generative.intent.data import IntentSamples
from generative.intent.losses import (
    focal_loss,
    forgotten_set,
    intent_distribution,
    prior_shift,
    unlearning_loss,
)
from generative.intent.model import ADAPTER_PARAMS, IntentPredictor
from generative.intent.train import model_inputs

STRATEGIES = ("unlearning", "none", "focal", "oversample")


@dataclass
class IndividualConfig:
    strategy: str = "unlearning"  # one of STRATEGIES
    threshold: float = 0.01       # eq. 8: intents with P_out below it are statically forgotten
    lam: float = 1.0              # eq. 11 lambda (Table 4)
    unlearn_steps: int = 10       # gradient steps on L_un when F is not empty
    finetune_steps: int = 40      # gradient steps of per-user fine-tuning (CE)
    lr: float = 1e-2              # Adam learning rate (the paper's 0.01)
    batch_size: int = 64
    focal_gamma: float = 2.0
    seed: int = 0
    # label-shift initialisation: before any step b_2 += prior_scale * (log p_dev - log P_pop)
    # (``losses.prior_shift``; Saerens et al. 2002), p_dev smoothed with this pseudo-count;
    # None = off. prior_scale > 1 trusts the user's prior more than Bayes' rule does.
    prior_shift: float | None = None
    prior_scale: float = 1.0


@dataclass
class UserAdapter:
    """A user's whole device-side state: named readout tensors and the forgotten set used."""

    tensors: dict[str, torch.Tensor]
    forgotten: list[int] = field(default_factory=list)

    def n_parameters(self) -> int:
        return sum(t.numel() for t in self.tensors.values())


def base_adapter(model: IntentPredictor) -> dict[str, torch.Tensor]:
    """Copies of the shared student's adapter tensors (the starting point of every user)."""
    params = dict(model.readout.named_parameters())
    return {name: params[name].detach().clone() for name in ADAPTER_PARAMS}


def readout_with(model: IntentPredictor, adapter: dict[str, torch.Tensor] | None,
                 hidden: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Intent logits (B, N_I) from encoder states with the user's adapter swapped in."""
    if adapter is None:
        return model.readout(hidden, length)
    return functional_call(model.readout, adapter, (hidden, length), strict=False)


def _ce_weights(target: torch.Tensor) -> torch.Tensor:
    counts = torch.bincount(target).double()
    return (1.0 / counts[target]).float()


def tune_user(model: IntentPredictor, samples: IntentSamples, p_out: torch.Tensor,
              p_pop: torch.Tensor, config: IndividualConfig,
              user_embeddings: torch.Tensor | None = None) -> UserAdapter:
    """Unlearn (eq. 8-11) then fine-tune one user's adapter on their tuning samples."""
    if config.strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {config.strategy!r}")
    model.eval()
    start = base_adapter(model)
    if config.prior_shift is not None and len(samples) > 0:
        shift = prior_shift(samples.target, p_pop, config.prior_shift)  # log p_dev - log P_pop
        start["out.bias"] = start["out.bias"] + config.prior_scale * shift.to(start["out.bias"])
    adapter = {k: v.clone().requires_grad_(True) for k, v in start.items()}
    if len(samples) == 0:
        return UserAdapter({k: v.detach() for k, v in adapter.items()})
    generator = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        hidden = model.encode(**model_inputs(samples, user_embeddings))  # (n, I, D), frozen
        # original M (n, N_I): the user's starting model (the shared one unless prior-shifted)
        reference = readout_with(model, start, hidden, samples.length)
    length, target = samples.length, samples.target
    # the shared readout tensors enter as constants: autograd only reaches the adapter
    frozen = {n: p.detach() for n, p in model.readout.named_parameters() if n not in adapter}
    optimizer = torch.optim.Adam(list(adapter.values()), lr=config.lr)
    n_intents = reference.shape[1]
    forgotten = torch.zeros(n_intents, dtype=torch.bool)

    def step(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def batch_index(weights: torch.Tensor | None = None) -> torch.Tensor:
        n = len(samples)
        if weights is not None:
            return torch.multinomial(weights, min(n, config.batch_size), replacement=True,
                                     generator=generator)
        return torch.randperm(n, generator=generator)[:config.batch_size]

    if config.strategy == "unlearning":
        p_in = intent_distribution(target, n_intents)
        forgotten = forgotten_set(p_out, p_pop, p_in, config.threshold)     # eq. 10
        if forgotten.any():                                                 # Alg. 1 line 2
            for _ in range(config.unlearn_steps):
                i = batch_index()
                logits = readout_with(model, {**frozen, **adapter}, hidden[i], length[i])
                step(unlearning_loss(logits, reference[i], target[i], forgotten, config.lam))
    weights = _ce_weights(target) if config.strategy == "oversample" else None
    for _ in range(config.finetune_steps):                                   # Alg. 1 line 5
        i = batch_index(weights)
        logits = readout_with(model, {**frozen, **adapter}, hidden[i], length[i])
        if config.strategy == "focal":
            step(focal_loss(logits, target[i], config.focal_gamma))
        else:
            step(F.cross_entropy(logits, target[i]))
    return UserAdapter({k: v.detach() for k, v in adapter.items()},
                       torch.nonzero(forgotten).squeeze(1).tolist())


def tune_users(model: IntentPredictor, samples: IntentSamples, p_out: torch.Tensor,
               p_pop: torch.Tensor, config: IndividualConfig,
               user_embeddings: torch.Tensor | None = None) -> dict[int, UserAdapter]:
    """One adapter per user index present in ``samples``."""
    return {int(u): tune_user(model, samples.subset(samples.user == u), p_out, p_pop, config,
                              user_embeddings)
            for u in torch.unique(samples.user).tolist()}


@torch.no_grad()
def predict_with_adapters(model: IntentPredictor, samples: IntentSamples,
                          adapters: dict[int, UserAdapter],
                          user_embeddings: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (N, N_I): each sample through its user's adapter (the shared model if none)."""
    model.eval()
    out = torch.zeros(len(samples), model.config.n_intents)
    for u in torch.unique(samples.user).tolist():
        index = torch.nonzero(samples.user == u).squeeze(1)
        part = samples.subset(index)
        hidden = model.encode(**model_inputs(part, user_embeddings))
        adapter = adapters.get(int(u))
        out[index] = readout_with(model, adapter.tensors if adapter else None, hidden,
                                  part.length)
    return out
