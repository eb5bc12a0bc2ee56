"""Save and load intent predictors and per-user adapters (safetensors + one JSON file).

The JSON keeps the backbone's architecture, so a saved model loads offline without its
pretrained source; the weights file holds every tensor, the backbone's included.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import load_file, save_file

from generative.intent.backbone import Backbone
from generative.intent.data import IntentDataConfig, IntentVocab
from generative.intent.individual import UserAdapter
from generative.intent.model import IntentModelConfig, IntentPredictor

MODEL_JSON, WEIGHTS, ADAPTERS = "intent_model.json", "model.safetensors", "adapters.safetensors"


def save_predictor(model: IntentPredictor, directory: str | Path, vocab: IntentVocab,
                   data_config: IntentDataConfig, meta: dict | None = None) -> Path:
    """Write ``intent_model.json`` and ``model.safetensors`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = {
        "model_config": model.config.to_dict(),
        "backbone": {"label": model.backbone.label, "pretrained": model.backbone.pretrained,
                     "hf_config": model.backbone.config_dict()},
        "vocab": vocab.to_dict(),
        "data_config": asdict(data_config),
        "meta": meta or {},
    }
    (directory / MODEL_JSON).write_text(json.dumps(spec, ensure_ascii=False, indent=1),
                                        encoding="utf-8")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    return directory


def load_predictor(directory: str | Path):
    """(model, vocab, data_config, meta) from a folder written by ``save_predictor``."""
    directory = Path(directory)
    path = directory / MODEL_JSON
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: not an intent model folder")
    spec = json.loads(path.read_text(encoding="utf-8"))
    backbone = Backbone.from_config_dict(spec["backbone"]["hf_config"],
                                         spec["backbone"]["label"],
                                         spec["backbone"]["pretrained"])
    # folders written before ``positions`` existed were trained with ids from the window start
    model_config = {"positions": "start", **spec["model_config"]}
    model = IntentPredictor(IntentModelConfig(**model_config), backbone)
    model.load_state_dict(load_file(str(directory / WEIGHTS)), strict=True)
    model.eval()
    return (model, IntentVocab(**spec["vocab"]), IntentDataConfig(**spec["data_config"]),
            spec["meta"])


def save_adapters(adapters: dict[str, UserAdapter], directory: str | Path) -> Path:
    """All users' adapters in one file, keyed ``<user_id>/<tensor name>``."""
    path = Path(directory) / ADAPTERS
    tensors = {f"{user}/{name}": t.contiguous() for user, a in adapters.items()
               for name, t in a.tensors.items()}
    forgotten = {user: a.forgotten for user, a in adapters.items()}
    save_file(tensors, str(path), metadata={"forgotten": json.dumps(forgotten)})
    return path


def load_adapters(directory: str | Path) -> dict[str, UserAdapter]:
    from safetensors import safe_open

    path = Path(directory) / ADAPTERS
    if not path.exists():
        return {}
    with safe_open(str(path), framework="pt") as handle:
        forgotten = json.loads((handle.metadata() or {}).get("forgotten", "{}"))
    adapters: dict[str, UserAdapter] = {}
    for key, tensor in load_file(str(path)).items():
        user, name = key.rsplit("/", 1)
        adapters.setdefault(user, UserAdapter({}, forgotten.get(user, []))).tensors[name] = tensor
    return adapters


def user_tensor_bytes(adapter: UserAdapter) -> int:
    return sum(t.numel() * t.element_size() for t in adapter.tensors.values())

