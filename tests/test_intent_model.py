"""The intent predictor (eq. 2-4) and its backbones, with tiny GPT-2 configs (no network)."""

import pytest
import torch

from generative.intent.backbone import BackboneConfig, load_backbone
from generative.intent.model import (
    IntentionAttention,
    IntentModelConfig,
    IntentPredictor,
    LocalActivationUnit,
)

TINY = BackboneConfig(kind="gpt2", n_layer=2, n_embd=16, n_head=2, max_positions=16)


def make_model(**options) -> IntentPredictor:
    config = IntentModelConfig(n_events=12, n_intents=5, n_locations=4, n_slots=24,
                               embed_dim=8, attention_dim=8, mlp_hidden=16, dropout=0.0,
                               **options)
    return IntentPredictor(config, load_backbone(TINY)).eval()


def batch(size=3, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([length, 2, 1][:size])
    real = torch.arange(length)[None, :] < lengths[:, None]

    def draw(high, low=1):
        return torch.where(real, torch.randint(low, high, (size, length), generator=g), 0)

    return {"location": draw(4), "weekday": draw(8), "slot": draw(25),
            "event": draw(12, 3), "length": lengths}


def test_local_activation_unit_blockwise_equals_concatenation():
    lau = LocalActivationUnit(16, 8)
    h, e = torch.randn(3, 6, 16), torch.randn(5, 16)
    assert torch.allclose(lau(h, e), lau.concat_form(h, e), atol=1e-5)
    assert lau(h, e).shape == (3, 5, 6)


def test_iat_weights_are_a_distribution_over_real_positions():
    iat = IntentionAttention(n_intents=5, width=16, attention_dim=8)
    hidden = torch.randn(3, 6, 16)
    length = torch.tensor([6, 2, 1])
    w = iat.weights(hidden, length)                                   # (B, N_I, I)
    assert w.shape == (3, 5, 6)
    assert torch.allclose(w.sum(-1), torch.ones(3, 5), atol=1e-6)     # sum_j w_ij = 1
    assert torch.all(w >= 0)
    assert torch.all(w[1, :, 2:] == 0) and torch.all(w[2, :, 1:] == 0)  # padding gets none
    assert torch.allclose(w[2, :, 0], torch.ones(5))
    # eq. 3: H_w[i] = sum_j w_ij h_j, and the weights differ between intents
    out = iat(hidden, length)
    manual = torch.einsum("bij,bjd->bid", w, hidden)
    assert torch.allclose(out, manual, atol=1e-6)
    assert not torch.allclose(w[0, 0], w[0, 1])


def test_predictor_shapes_and_padding_is_invisible():
    model = make_model()
    inputs = batch()
    logits = model(**inputs)
    assert logits.shape == (3, 5)
    changed = {k: v.clone() for k, v in inputs.items()}
    changed["event"][1, 2:] = 7                   # garbage where the window is padding
    changed["slot"][2, 1:] = 3
    assert torch.allclose(model(**changed), logits, atol=1e-5)
    changed["event"][1, 0] = 9                    # a real position matters
    assert not torch.allclose(model(**changed)[1], logits[1])


def test_reconstruction_head_and_without_iat():
    model = make_model(iat=False)
    inputs = batch()
    assert model(**inputs).shape == (3, 5)
    masked = dict(inputs, event_masked=inputs.pop("event"))
    assert model.reconstruction_logits(**masked).shape == (3, 6, 12)


def test_user_embedding_conditioning():
    model = make_model(user_embedding_dim=4)
    inputs = batch()
    a = model(**inputs, user_embedding=torch.zeros(3, 4))
    b = model(**inputs, user_embedding=torch.ones(3, 4))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="h_u"):
        model(**inputs)
    with pytest.raises(ValueError, match="user_embedding_dim=0"):
        make_model()(**inputs, user_embedding=torch.zeros(3, 4))


def test_query_time_is_read_only_when_configured():
    model = make_model(query_time=True)
    inputs = batch()
    age = torch.where(inputs["event"] > 0, 8, 0)                # every event two slots ago
    monday_9 = {"query_weekday": torch.tensor([1, 1, 1]), "query_slot": torch.tensor([10] * 3),
                "age": age}
    monday_21 = dict(monday_9, query_slot=torch.tensor([22] * 3))
    a, b = model(**inputs, **monday_9), model(**inputs, **monday_21)
    assert a.shape == (3, 5) and not torch.allclose(a, b)      # "now" changes the prediction
    older = model(**inputs, **dict(monday_9, age=torch.where(inputs["event"] > 0, 20, 0)))
    assert not torch.allclose(a, older)                         # and so do the events' ages
    with pytest.raises(ValueError, match="query time"):
        model(**inputs)
    plain = make_model()                                        # the paper's eq. 2: no query
    assert torch.allclose(plain(**inputs, **monday_9), plain(**inputs, **monday_21))
    # padding stays invisible with the query added to every position
    changed = {k: v.clone() for k, v in inputs.items()}
    changed["event"][1, 2:] = 7
    changed_query = dict(monday_9, age=monday_9["age"].clone())
    changed_query["age"][1, 2:] = 5
    assert torch.allclose(model(**changed, **changed_query), a, atol=1e-5)
    masked = dict(inputs, event_masked=inputs.pop("event"))
    assert model.reconstruction_logits(**masked, **monday_9).shape == (3, 6, 12)


def test_backbone_labels_truncation_and_pretrained_path(tmp_path):
    from transformers import GPT2Config, GPT2Model

    source = GPT2Model(GPT2Config(n_layer=3, n_embd=16, n_head=2, n_positions=16,
                                  vocab_size=10))
    source.save_pretrained(tmp_path)
    loaded = load_backbone(BackboneConfig(kind="pretrained", name_or_path=str(tmp_path),
                                          n_layers=2))
    assert loaded.pretrained and "pretrained" in loaded.label and "first 2/3" in loaded.label
    assert len(loaded.body.h) == 2
    assert torch.equal(loaded.body.h[1].mlp.c_fc.weight, source.h[1].mlp.c_fc.weight)
    scratch = load_backbone(BackboneConfig(kind="pretrained", name_or_path=str(tmp_path),
                                           pretrained=False))
    assert not scratch.pretrained and "no pretraining" in scratch.label
    assert not torch.equal(scratch.body.h[1].mlp.c_fc.weight, source.h[1].mlp.c_fc.weight)
    assert loaded(torch.randn(2, 5, 16)).shape == (2, 5, 16)
    with pytest.raises(ValueError, match="n_layers"):
        load_backbone(BackboneConfig(kind="gpt2", n_layer=2, n_embd=16, n_head=2, n_layers=3))
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone(BackboneConfig(kind="bert"))


def test_random_backbone_is_seeded():
    a, b = load_backbone(TINY), load_backbone(TINY)
    assert torch.equal(a.body.h[0].attn.c_attn.weight, b.body.h[0].attn.c_attn.weight)
    assert "random init" in a.label


@pytest.mark.slow
def test_bundled_smollm2_backbone_keeps_pretrained_blocks(smollm2):
    lm, _ = smollm2
    backbone = load_backbone(BackboneConfig(kind="smollm2", n_layers=1))
    assert backbone.pretrained and "SmolLM2" in backbone.label and "first 1/30" in backbone.label
    assert torch.equal(backbone.body.layers[0].mlp.up_proj.weight,
                       lm.model.layers[0].mlp.up_proj.weight)
    assert backbone(torch.randn(1, 4, backbone.width)).shape == (1, 4, 576)


def test_end_positions_put_the_latest_event_last():
    model = make_model(positions="end")
    inputs = batch()
    ids = model.position_ids(inputs["length"], 6)
    rows = torch.arange(3)
    assert torch.all(ids[rows, inputs["length"] - 1] == 5)   # the latest real event: I - 1
    assert torch.all(ids[:, 1:] - ids[:, :-1] == 1)           # consecutive within a window
    assert make_model(positions="start").position_ids(inputs["length"], 6) is None
    with pytest.raises(ValueError, match="positions"):
        make_model(positions="middle")(**inputs)


def test_end_positions_equal_left_padding_for_gpt2():
    """Right padding + "end" ids gives the real events the states of a left-padded window."""
    model = make_model(positions="end")
    inputs = batch()
    hidden = model.encode(**inputs)
    for k, n in enumerate(inputs["length"].tolist()):
        one = {key: value[k:k + 1, :n] for key, value in inputs.items() if key != "length"}
        x = model.embed(one["location"], one["weekday"], one["slot"], one["event"])
        pad = torch.zeros(1, 6 - n, x.shape[-1])
        mask = torch.cat([torch.zeros(1, 6 - n), torch.ones(1, n)], 1).long()
        left = model.backbone.body(inputs_embeds=torch.cat([pad, x], 1), attention_mask=mask,
                                   position_ids=torch.arange(6)[None, :], use_cache=False)
        assert torch.allclose(hidden[k, :n], left.last_hidden_state[0, 6 - n:], atol=1e-5)


def test_rotary_backbone_is_unchanged_by_end_positions():
    from transformers import LlamaConfig, LlamaModel

    from generative.intent.backbone import Backbone

    torch.manual_seed(0)
    body = LlamaModel(LlamaConfig(vocab_size=1, hidden_size=16, intermediate_size=32,
                                  num_hidden_layers=2, num_attention_heads=2,
                                  num_key_value_heads=1, max_position_embeddings=32))
    config = IntentModelConfig(n_events=12, n_intents=5, n_locations=4, n_slots=24,
                               embed_dim=8, attention_dim=8, mlp_hidden=16, dropout=0.0,
                               positions="end")
    model = IntentPredictor(config, Backbone(body, "tiny llama", False)).eval()
    assert model.backbone.max_positions is None
    inputs = batch()
    end = model(**inputs)
    model.config.positions = "start"
    assert torch.allclose(end, model(**inputs), atol=1e-5)
