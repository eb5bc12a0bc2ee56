"""The DPO objective (seed paper 000, Sec. 5.3, eq. 27), and how to measure it on a model.

    L_DPO = -E[ log sigma( beta [ log pi_theta(y_w|x)/pi_ref(y_w|x)
                                  - log pi_theta(y_l|x)/pi_ref(y_l|x) ] ) ]     (27)

``recipes/dpo.py`` trains with TRL's ``DPOTrainer`` (``loss_type: sigmoid`` is eq. 27); this
module computes the same quantity independently, to check a trained adapter on held-out
triplets: its loss and how often its implicit reward prefers y_w (``reward_accuracy``). The
reference pi_ref is the policy with its adapter disabled, or a separate reference adapter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """Eq. 27 for a batch of sequence log-probabilities, each (B,); returns the mean loss."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)  # (B,)
    return -F.logsigmoid(beta * margin).mean()  # eq. 27


def completion_logprob(model: Any, tokenizer: Any, prompt: Sequence[dict], completion: str
                       ) -> float:
    """log pi(y | x): the summed log-probability of the assistant turn ``completion`` (its
    end-of-turn included) after the chat-templated ``prompt`` turns."""
    prefix = tokenizer.apply_chat_template(list(prompt), tokenize=False,
                                           add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": completion}], tokenize=False)
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    start = len(prefix_ids)
    if ids[:start] != prefix_ids:
        raise ValueError("the chat template renders the prompt differently with the answer")
    tokens = torch.tensor([ids])  # (1, L)
    with torch.no_grad():
        logits = model(input_ids=tokens).logits[0, :-1].float()  # (L-1, V) predicts t+1
    logprobs = torch.log_softmax(logits, dim=-1)
    targets = tokens[0, 1:]  # (L-1,)
    picked = logprobs[torch.arange(len(targets)), targets]  # (L-1,)
    return float(picked[start - 1:].sum())


@contextlib.contextmanager
def reference_of(model: Any, reference_adapter: str | None = None):
    """The reference policy inside the block: adapters disabled, or ``reference_adapter``."""
    if reference_adapter is None:
        with model.disable_adapter():
            yield model
        return
    active = model.active_adapter
    model.set_adapter(reference_adapter)
    try:
        yield model
    finally:
        model.set_adapter(active)


@dataclass(frozen=True)
class PreferenceCheck:
    triplets: int
    loss: float  # eq. 27 at this beta
    reward_accuracy: float  # share of triplets whose implicit reward margin is > 0
    mean_margin: float  # mean of the log-ratio margin (before beta)


def check_preferences(model: Any, tokenizer: Any, rows: Sequence[dict], beta: float,
                      reference_adapter: str | None = None) -> PreferenceCheck:
    """Eq. 27 and the implicit-reward accuracy of a PEFT ``model`` on preference ``rows``."""
    logps = {"pc": [], "pr": [], "rc": [], "rr": []}
    for row in rows:
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        logps["pc"].append(completion_logprob(model, tokenizer, row["prompt"], chosen))
        logps["pr"].append(completion_logprob(model, tokenizer, row["prompt"], rejected))
        with reference_of(model, reference_adapter) as reference:
            logps["rc"].append(completion_logprob(reference, tokenizer, row["prompt"], chosen))
            logps["rr"].append(completion_logprob(reference, tokenizer, row["prompt"], rejected))
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in logps.items()}
    margin = (t["pc"] - t["rc"]) - (t["pr"] - t["rr"])
    return PreferenceCheck(triplets=len(rows),
                           loss=float(dpo_loss(t["pc"], t["pr"], t["rc"], t["rr"], beta)),
                           reward_accuracy=float((margin > 0).double().mean()),
                           mean_margin=float(margin.mean()))
