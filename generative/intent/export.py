"""TorchScript export of a (student) intent predictor for on-device inference.

The exported program takes the window tensors (location, weekday, slot, event, length,
query_weekday, query_slot, age), each (B, I) long except ``length`` and the query time (B,), and
returns intent logits (B, N_I); models built without ``query_time`` ignore the query time. A user's adapter can be
baked in, so the device holds one self-contained file. ``max_export_error`` compares the export
with the PyTorch model on real inputs.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from generative.intent.data import IntentSamples
from generative.intent.individual import UserAdapter
from generative.intent.model import IntentPredictor

EXPORT_INPUTS = ("location", "weekday", "slot", "event", "length", "query_weekday",
                 "query_slot", "age")


class _Inference(nn.Module):
    def __init__(self, model: IntentPredictor):
        super().__init__()
        self.model = model

    def forward(self, location, weekday, slot, event, length, query_weekday, query_slot, age):
        return self.model(location, weekday, slot, event, length,
                          query_weekday=query_weekday, query_slot=query_slot, age=age)


def with_adapter(model: IntentPredictor, adapter: UserAdapter | None) -> IntentPredictor:
    """A copy of ``model`` whose readout holds the user's adapter tensors (or the model)."""
    if adapter is None:
        return model
    merged = copy.deepcopy(model)
    params = dict(merged.readout.named_parameters())
    with torch.no_grad():
        for name, tensor in adapter.tensors.items():
            params[name].copy_(tensor)
    return merged


def export_torchscript(model: IntentPredictor, path: str | Path, example: IntentSamples,
                       adapter: UserAdapter | None = None) -> Path:
    """Trace ``model`` (with ``adapter`` baked in) on ``example`` and save it to ``path``."""
    if model.config.user_embedding_dim > 0:
        raise ValueError("export supports models without h_u conditioning")
    module = _Inference(with_adapter(model, adapter)).eval()
    # a batch of one would be traced as a constant batch size: trace on at least two rows
    example = example.subset(torch.arange(max(2, len(example))) % len(example))
    inputs = tuple(example.inputs()[k] for k in EXPORT_INPUTS)
    with torch.no_grad():
        traced = torch.jit.trace(module, inputs, strict=False, check_trace=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(path))
    return path


def load_exported(path: str | Path) -> torch.jit.ScriptModule:
    return torch.jit.load(str(path))


@torch.no_grad()
def max_export_error(model: IntentPredictor, exported, samples: IntentSamples,
                     adapter: UserAdapter | None = None) -> float:
    """Largest |exported - PyTorch| over the logits of ``samples``."""
    reference = with_adapter(model, adapter).eval()
    inputs = samples.inputs()
    ours = reference(**inputs)
    theirs = exported(*(inputs[k] for k in EXPORT_INPUTS))
    return float((ours - theirs).abs().max())
