"""The PITuning intent predictor (Gong et al., KDD'24, section 3.2, eq. 2-4).

Parts: behaviour embeddings (four tables, concatenated), a causal transformer backbone (eq. 2),
the Intention Attention Network with its local activation unit (eq. 3), the MLP prediction
layer (eq. 4), and the event-reconstruction head used by the auxiliary loss (eq. 5).
``IntentReadout`` (IAT + MLP) is separate from the encoder so that per-user tuning can swap a
few of its tensors (``ADAPTER_PARAMS``) without copying the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from generative.intent.backbone import Backbone
from generative.intent.data import n_age_buckets


@dataclass
class IntentModelConfig:
    n_events: int              # with PAD, UNK, MASK
    n_intents: int             # N_I
    n_locations: int           # with PAD, UNK
    n_slots: int               # time slots of a day (pad id 0 is added)
    n_weekdays: int = 7        # pad id 0 is added
    embed_dim: int = 64        # d: each of the four tables (the paper uses 4d = width)
    iat: bool = True           # False: read the last real position ("without IAT" ablation)
    attention_dim: int = 64    # hidden size of the local activation unit a(.)
    mlp_hidden: int = 256      # W_1 of eq. 4
    user_embedding_dim: int = 0  # > 0: condition on the U-SCOPE user embedding h_u
    dropout: float = 0.1
    # "start": ids 0, 1, ... from the first event (what BENCHMARKS.md `intent` was run with);
    # "end": ids count so that the last real event sits at I - 1 in every window, as in a
    # left-padded window (no measurable difference on validation; see model.position_ids)
    positions: str = "start"
    # True: every position also sees the time the prediction is for (the target's weekday and
    # slot, the "current time t" the Appendix E baselines get) and its own age relative to it;
    # off = the paper's eq. 1-2
    query_time: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class BehaviourEmbedding(nn.Module):
    """E_l, E_w, E_t, E_e (each (B, I, d)), concatenated to (B, I, 4d), projected to width."""

    def __init__(self, config: IntentModelConfig, width: int):
        super().__init__()
        d = config.embed_dim
        self.location = nn.Embedding(config.n_locations, d, padding_idx=0)
        self.weekday = nn.Embedding(config.n_weekdays + 1, d, padding_idx=0)
        self.slot = nn.Embedding(config.n_slots + 1, d, padding_idx=0)
        self.event = nn.Embedding(config.n_events, d, padding_idx=0)
        self.project = nn.Linear(4 * d, width)
        self.user = (nn.Linear(config.user_embedding_dim, width)
                     if config.user_embedding_dim > 0 else None)
        self.query = QueryTime(config, width) if config.query_time else None

    def forward(self, location, weekday, slot, event, user_embedding=None,
                query_weekday=None, query_slot=None, age=None) -> torch.Tensor:
        x = torch.cat([self.location(location), self.weekday(weekday), self.slot(slot),
                       self.event(event)], dim=-1)  # (B, I, 4d): eq. 2 concat
        x = self.project(x)  # (B, I, D)
        if self.query is not None:
            if query_weekday is None or query_slot is None or age is None:
                raise ValueError("this model reads the query time: pass query_weekday, "
                                 "query_slot (B,) and age (B, I)")
            x = x + self.query(query_weekday, query_slot, age)
        if self.user is not None:
            if user_embedding is None:
                raise ValueError("this model conditions on h_u: pass user_embedding (B, d_u)")
            x = x + self.user(user_embedding).unsqueeze(1)  # (B, 1, D) broadcast
        elif user_embedding is not None:
            raise ValueError("user_embedding given but the model has user_embedding_dim=0")
        return x


class QueryTime(nn.Module):
    """The time a prediction is for (weekday, slot), embedded and projected to width and added
    to every position as h_u is, plus each event's age relative to it (``data.age_bucket``),
    so attention can relate each event to "now"."""

    def __init__(self, config: IntentModelConfig, width: int):
        super().__init__()
        d = config.embed_dim
        self.weekday = nn.Embedding(config.n_weekdays + 1, d, padding_idx=0)
        self.slot = nn.Embedding(config.n_slots + 1, d, padding_idx=0)
        self.project = nn.Linear(2 * d, width)
        self.age = nn.Embedding(n_age_buckets(config.n_slots), width, padding_idx=0)

    def forward(self, weekday: torch.Tensor, slot: torch.Tensor,
                age: torch.Tensor) -> torch.Tensor:
        """(B, I, D): the query time (B, 1, D) broadcast plus the age of each position."""
        now = self.project(torch.cat([self.weekday(weekday), self.slot(slot)], dim=-1))
        return now.unsqueeze(1) + self.age(age)


class LocalActivationUnit(nn.Module):
    """a(h_j, E_i) of eq. 3: a feed-forward net on [h', e', h' * e', h' - e'] -> one score.

    The element-wise product is the interaction ("outer product") term of the local
    activation unit; h' and e' are h_j and E_i projected to ``attention_dim``. The first
    layer's weight W = [W_h | W_e | W_p | W_d] is applied blockwise, (W_h + W_d) h' +
    (W_e - W_d) e' + W_p (h' * e'), which equals W [h', e', h' * e', h' - e'] without
    materialising the (B, N_I, I, 4A) concatenation.
    """

    def __init__(self, width: int, attention_dim: int):
        super().__init__()
        self.h = nn.Linear(width, attention_dim)
        self.e = nn.Linear(width, attention_dim, bias=False)
        self.first = nn.Linear(4 * attention_dim, attention_dim)
        self.act = nn.SiLU()
        self.score = nn.Linear(attention_dim, 1)

    def forward(self, hidden: torch.Tensor, intents: torch.Tensor) -> torch.Tensor:
        h = self.h(hidden).unsqueeze(1)        # (B, 1, I, A)
        e = self.e(intents)[None, :, None, :]  # (1, N_I, 1, A)
        w_h, w_e, w_p, w_d = self.first.weight.split(h.shape[-1], dim=1)  # each (A, A)
        pre = (h @ (w_h + w_d).T + e @ (w_e - w_d).T + (h * e) @ w_p.T
               + self.first.bias)              # (B, N_I, I, A)
        return self.score(self.act(pre)).squeeze(-1)  # (B, N_I, I)

    def concat_form(self, hidden: torch.Tensor, intents: torch.Tensor) -> torch.Tensor:
        """The same scores from the explicit concatenation (reference for tests)."""
        h = self.h(hidden).unsqueeze(1)
        e = self.e(intents)[None, :, None, :]
        h, e = torch.broadcast_tensors(h, e)
        return self.score(self.act(self.first(torch.cat([h, e, h * e, h - e], -1)))).squeeze(-1)


def valid_mask(length: torch.Tensor, size: int) -> torch.Tensor:
    """(B, I) bool: True on the real (left-aligned) positions of right-padded windows."""
    return torch.arange(size, device=length.device)[None, :] < length[:, None]


class IntentionAttention(nn.Module):
    """IAT (eq. 3): H_w[i] = sum_j w_ij h_j with w_i = softmax_j a(h_j, E_i) over real positions.

    The weights of each intent are non-negative, zero on padding and sum to one over the
    window; E_i (N_I, D) are learnable intent embeddings.
    """

    def __init__(self, n_intents: int, width: int, attention_dim: int):
        super().__init__()
        self.intent_embeddings = nn.Parameter(torch.randn(n_intents, width) * 0.02)
        self.activation = LocalActivationUnit(width, attention_dim)

    def weights(self, hidden: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        scores = self.activation(hidden, self.intent_embeddings)   # (B, N_I, I)
        real = valid_mask(length, hidden.shape[1]).unsqueeze(1)     # (B, 1, I)
        return torch.softmax(scores.masked_fill(~real, float("-inf")), dim=-1)  # eq. 3: w_ij

    def forward(self, hidden: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        return self.weights(hidden, length) @ hidden  # (B, N_I, D): eq. 3 sum_j w_ij h_j


class IntentReadout(nn.Module):
    """IAT (eq. 3) then the MLP prediction layer m = W_2 sigma(W_1 H_w + b_1) + b_2 (eq. 4)."""

    def __init__(self, config: IntentModelConfig, width: int):
        super().__init__()
        self.use_iat = config.iat
        self.iat = IntentionAttention(config.n_intents, width, config.attention_dim)
        pooled = config.n_intents * width if config.iat else width
        self.hidden = nn.Linear(pooled, config.mlp_hidden)   # W_1, b_1
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.mlp_hidden, config.n_intents)  # W_2, b_2

    def forward(self, hidden: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        if self.use_iat:
            pooled = self.iat(hidden, length).flatten(1)  # (B, N_I * D)
        else:  # ablation: the last real position of the causal backbone
            last = (length - 1).clamp(min=0)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, D)
        return self.out(self.dropout(torch.relu(self.hidden(pooled))))  # (B, N_I): eq. 4


# Per-user state: the intent embeddings E_i and the output layer (W_2, b_2) of the readout.
ADAPTER_PARAMS = ("iat.intent_embeddings", "out.weight", "out.bias")


class IntentPredictor(nn.Module):
    """f(x_{t-I}, ..., x_{t-1}) -> intent logits (B, N_I) (eq. 1-4)."""

    def __init__(self, config: IntentModelConfig, backbone: Backbone):
        super().__init__()
        self.config = config
        self.backbone = backbone
        width = backbone.width
        self.embed = BehaviourEmbedding(config, width)
        self.readout = IntentReadout(config, width)
        self.reconstruct = nn.Sequential(nn.Linear(width, config.mlp_hidden), nn.GELU(),
                                         nn.Linear(config.mlp_hidden, config.n_events))

    @classmethod
    def from_vocab(cls, vocab, backbone: Backbone, **options) -> IntentPredictor:
        """A predictor sized for ``vocab`` (an ``IntentVocab``); ``options`` set the rest."""
        config = IntentModelConfig(n_events=vocab.n_events, n_intents=vocab.n_intents,
                                   n_locations=vocab.n_locations, n_slots=vocab.n_slots,
                                   **options)
        return cls(config, backbone)

    @property
    def backbone_label(self) -> str:
        return self.backbone.label

    def position_ids(self, length: torch.Tensor, size: int) -> torch.Tensor | None:
        """(B, I) position ids, or None for the backbone's default 0..I-1.

        Windows are right-padded, so with default ids the most recent event of a short window
        sits at length - 1 and a causal state cannot know it is the latest. ``positions="end"``
        shifts each window by I - length: real event j gets id I - length + j, the latest
        always I - 1, exactly its id in a left-padded window (padding ids are clamped; causal
        attention keeps real positions from seeing them). Rotary backbones only see offsets,
        which a shift leaves unchanged.
        """
        if self.config.positions == "start":
            return None
        if self.config.positions != "end":
            raise ValueError(f"positions must be 'end' or 'start', got {self.config.positions!r}")
        ids = torch.arange(size, device=length.device)[None, :] + (size - length)[:, None]
        limit = self.backbone.max_positions
        return ids.clamp(max=(limit or 2 * size) - 1)

    def encode(self, location, weekday, slot, event, length, user_embedding=None,
               query_weekday=None, query_slot=None, age=None):
        """H_t = backbone(concat(E_l, E_w, E_t, E_e)) (eq. 2): (B, I, D).

        Right padding + causal attention: real positions never see padding. The query time
        is read only by models built with ``query_time``.
        """
        x = self.embed(location, weekday, slot, event, user_embedding, query_weekday,
                       query_slot, age)
        return self.backbone(x, self.position_ids(length, x.shape[1]))

    def forward(self, location, weekday, slot, event, length, user_embedding=None,
                query_weekday=None, query_slot=None, age=None):
        hidden = self.encode(location, weekday, slot, event, length, user_embedding,
                             query_weekday, query_slot, age)
        return self.readout(hidden, length)  # (B, N_I)

    def reconstruction_logits(self, location, weekday, slot, event_masked, length,
                              user_embedding=None, query_weekday=None, query_slot=None,
                              age=None) -> torch.Tensor:
        """Event logits (B, I, N_E) from the window with masked events (eq. 5, Alg. 1 l. 4-6)."""
        hidden = self.encode(location, weekday, slot, event_masked, length, user_embedding,
                             query_weekday, query_slot, age)
        return self.reconstruct(hidden)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
