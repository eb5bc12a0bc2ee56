"""Transformer backbones for the intent predictor (PITuning eq. 2: H_t = GPT2(concat(...))).

The backbone maps input embeddings (B, L, D) to hidden states (B, L, D) with causal attention;
its token embeddings are dropped (inputs come from the four behaviour embedding tables).

Sources (``BackboneConfig.kind``):
- ``"smollm2"``: the bundled pretrained SmolLM2-135M-Instruct (``uscope.models``), the offline
  default for the population predictor;
- ``"pretrained"``: any causal LM by path or hub id with ``from_pretrained`` (e.g.
  ``openai-community/gpt2``, the paper's GPT2-small);
- ``"gpt2"``: a GPT-2 built from the sizes in the config and randomly initialised (the
  on-device student, and tiny test models).
``pretrained=False`` keeps the named architecture but initialises it randomly: the paper's
"without pretrained LM" ablation (Fig. 5). ``Backbone.label`` says which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class BackboneConfig:
    kind: str = "smollm2"              # "smollm2" | "pretrained" | "gpt2"
    name_or_path: str | None = None    # kind="pretrained": local path or hub id
    pretrained: bool = True            # False: same architecture, random initialisation
    n_layers: int | None = None        # keep only the first n_layers blocks (None: all)
    n_layer: int = 4                   # kind="gpt2": blocks
    n_embd: int = 256                  # kind="gpt2": width
    n_head: int = 4                    # kind="gpt2": attention heads
    max_positions: int = 64            # kind="gpt2": learned positions (>= input length)
    dropout: float = 0.0               # kind="gpt2": residual/attention dropout
    seed: int = 0                      # random initialisation


_LAYER_ATTRS = ("layers", "h")                     # Llama-style, GPT-2
_TOKEN_EMBED_ATTRS = ("embed_tokens", "wte")
_LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer")


def _blocks(model: nn.Module) -> nn.ModuleList:
    for name in _LAYER_ATTRS:
        blocks = getattr(model, name, None)
        if isinstance(blocks, nn.ModuleList):
            return blocks
    raise ValueError(f"{type(model).__name__} has no transformer block list "
                     f"(looked for {', '.join(_LAYER_ATTRS)})")


class Backbone(nn.Module):
    """A causal transformer body used through ``inputs_embeds``; outputs (B, L, D)."""

    def __init__(self, body: nn.Module, label: str, pretrained: bool):
        super().__init__()
        self.body = body
        self.label = label
        self.pretrained = pretrained
        self.width = int(body.config.hidden_size)

    @property
    def max_positions(self) -> int | None:
        """Learned absolute positions of the body (GPT-2), None for rotary bodies (Llama)."""
        value = getattr(self.body.config, "n_positions", None)
        return None if getattr(self.body, "wpe", None) is None else value

    def forward(self, inputs_embeds: torch.Tensor,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        out = self.body(inputs_embeds=inputs_embeds, position_ids=position_ids, use_cache=False)
        return out.last_hidden_state  # (B, L, D)

    def config_dict(self) -> dict:
        """The architecture (HF config) needed to rebuild this backbone without its source."""
        return self.body.config.to_dict()

    @classmethod
    def from_config_dict(cls, config: dict, label: str, pretrained: bool) -> Backbone:
        from transformers import AutoConfig, AutoModel

        hf = AutoConfig.for_model(**config)
        return cls(AutoModel.from_config(hf), label, pretrained)


def _truncate(body: nn.Module, n_layers: int | None) -> tuple[int, int]:
    blocks = _blocks(body)
    total = len(blocks)
    keep = total if n_layers is None else int(n_layers)
    if not 1 <= keep <= total:
        raise ValueError(f"n_layers must be in 1..{total}, got {n_layers}")
    del blocks[keep:]
    for key in _LAYER_COUNT_KEYS:
        if hasattr(body.config, key):
            setattr(body.config, key, keep)
    if hasattr(body.config, "layer_types") and body.config.layer_types is not None:
        body.config.layer_types = body.config.layer_types[:keep]
    return keep, total


def _drop_token_embeddings(body: nn.Module) -> None:
    """Inputs are behaviour embeddings: replace the vocabulary table with a 1-row stub."""
    for name in _TOKEN_EMBED_ATTRS:
        if isinstance(getattr(body, name, None), nn.Embedding):
            setattr(body, name, nn.Embedding(1, body.config.hidden_size))
            body.config.vocab_size = 1
            for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
                if hasattr(body.config, key):
                    setattr(body.config, key, None)
            return


def _seeded_from_config(hf_config, seed: int) -> nn.Module:
    from transformers import AutoModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModel.from_config(hf_config)


def load_backbone(config: BackboneConfig) -> Backbone:
    """Build the backbone named by ``config``; see the module docstring for the kinds."""
    from transformers import AutoConfig, AutoModel, GPT2Config

    if config.kind == "gpt2":
        hf = GPT2Config(n_layer=config.n_layer, n_embd=config.n_embd, n_head=config.n_head,
                        n_positions=config.max_positions, vocab_size=1,
                        resid_pdrop=config.dropout, embd_pdrop=config.dropout,
                        attn_pdrop=config.dropout, bos_token_id=None, eos_token_id=None)
        body = _seeded_from_config(hf, config.seed)
        name = f"GPT-2 ({config.n_layer} layers, {config.n_embd}-d)"
        pretrained = False
    elif config.kind in ("smollm2", "pretrained"):
        if config.kind == "smollm2":
            from uscope.models import SMOLLM2_NAME, smollm2_hf_dir

            source, name = smollm2_hf_dir(), SMOLLM2_NAME
        else:
            if not config.name_or_path:
                raise ValueError("kind='pretrained' needs name_or_path (a path or hub id)")
            source, name = config.name_or_path, str(config.name_or_path)
        if config.pretrained:
            body = AutoModel.from_pretrained(source)
        else:
            body = _seeded_from_config(AutoConfig.from_pretrained(source), config.seed)
        pretrained = config.pretrained
    else:
        raise ValueError(f"unknown backbone kind {config.kind!r} "
                         f"(expected 'smollm2', 'pretrained' or 'gpt2')")
    keep, total = _truncate(body, config.n_layers)
    _drop_token_embeddings(body)
    init = "pretrained" if pretrained else "random init, no pretraining"
    layers = f"{keep} layers" if keep == total else f"first {keep}/{total} layers"
    return Backbone(body, f"{name} ({init}, {layers})", pretrained)
