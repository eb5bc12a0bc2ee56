"""Population -> distillation -> individual stages on a slice of the real netfp data, with tiny
GPT-2 backbones (plumbing and behaviour; the real-size runs are in benchmarks/)."""

import dataclasses

import numpy as np
import pytest
import torch

from generative.intent import (
    ADAPTER_PARAMS,
    HONOR,
    BackboneConfig,
    FirstOrderMarkov,
    IndividualConfig,
    IntentPredictor,
    MostFrequent,
    ProtocolConfig,
    TrainConfig,
    appendix_e_features,
    build_protocol,
    distill,
    export_torchscript,
    fit_lightgbm,
    intent_metrics,
    lightgbm_params,
    load_adapters,
    load_exported,
    load_predictor,
    max_export_error,
    output_distribution,
    predict_logits,
    predict_with_adapters,
    save_adapters,
    save_predictor,
    train_population,
    tune_user,
    tune_users,
)
from generative.intent.data import IntentVocab
from generative.intent.losses import forgotten_set, intent_distribution

OPTIONS = {"embed_dim": 8, "attention_dim": 8, "mlp_hidden": 32, "dropout": 0.0}
TEACHER = BackboneConfig(kind="gpt2", n_layer=2, n_embd=32, n_head=2, max_positions=16)
STUDENT = BackboneConfig(kind="gpt2", n_layer=1, n_embd=16, n_head=2, max_positions=16)


@pytest.fixture(scope="module")
def protocol(netfp_events):
    events, _ = netfp_events
    users = events["user_id"].unique()[:60]
    part = events[events["user_id"].isin(users)]
    cfg = HONOR.__class__(input_length=8)
    return build_protocol(part, cfg, ProtocolConfig(n_individual=12, seed=0),
                          vocab=IntentVocab.fit(events, cfg))


@pytest.fixture(scope="module")
def trained(protocol):
    from generative.intent import load_backbone

    torch.manual_seed(0)
    teacher = IntentPredictor.from_vocab(protocol.vocab, load_backbone(TEACHER), **OPTIONS)
    history = train_population(teacher, protocol.population,
                               TrainConfig(steps=30, batch_size=16, lr=3e-3, backbone_lr=3e-3))
    student = IntentPredictor.from_vocab(protocol.vocab, load_backbone(STUDENT), **OPTIONS)
    distill_history = distill(student, teacher, protocol.population,
                              TrainConfig(steps=20, batch_size=16, lr=3e-3, backbone_lr=3e-3))
    return teacher, student, history, distill_history


def test_population_tuning_and_distillation_learn(trained, protocol):
    teacher, _, history, distill_history = trained
    assert np.mean(history[-8:]) < np.mean(history[:8])
    assert np.mean(distill_history[-6:]) < np.mean(distill_history[:6])
    y = protocol.population.target.numpy()
    # the population predictor beats the uniform ranking on its own data
    m = intent_metrics(y, predict_logits(teacher, protocol.population).numpy())
    uniform = intent_metrics(y, np.zeros((len(y), protocol.vocab.n_intents)))
    assert m["NDCG@5"] > uniform["NDCG@5"]


def test_individual_tuning_touches_only_the_small_adapter(trained, protocol):
    teacher, student, _, _ = trained
    before = {k: v.clone() for k, v in student.state_dict().items()}
    p_out = output_distribution(predict_logits(teacher, protocol.population))
    p_pop = intent_distribution(protocol.population.target, protocol.vocab.n_intents)
    config = IndividualConfig(unlearn_steps=3, finetune_steps=10)
    adapters = tune_users(student, protocol.tune, p_out, p_pop, config)
    for k, v in student.state_dict().items():
        assert torch.equal(v, before[k]), f"shared student changed: {k}"
    adapter = next(iter(adapters.values()))
    assert set(adapter.tensors) == set(ADAPTER_PARAMS)
    n_i, width, hidden = protocol.vocab.n_intents, student.backbone.width, OPTIONS["mlp_hidden"]
    assert adapter.n_parameters() == n_i * width + hidden * n_i + n_i
    # at the benchmark's student size (4 layers, 128-d) a user's state is < 1% of the model
    from generative.intent import load_backbone
    from generative.intent.individual import base_adapter

    deployed = IntentPredictor.from_vocab(protocol.vocab, load_backbone(BackboneConfig(
        kind="gpt2", n_layer=4, n_embd=128, n_head=4)), embed_dim=64, attention_dim=32)
    size = sum(t.numel() for t in base_adapter(deployed).values())
    assert size < 0.01 * deployed.n_parameters()
    # the forgotten set recorded is eq. 10 on this user's tuning data
    u = int(protocol.tune.user[0])
    mine = protocol.tune.subset(protocol.tune.user == u)
    expected = forgotten_set(p_out, p_pop, intent_distribution(mine.target, n_i), 0.01)
    assert adapters[u].forgotten == torch.nonzero(expected).squeeze(1).tolist()
    # tuning fits the user's own data better than the shared student
    shared = predict_logits(student, mine)
    tuned = predict_with_adapters(student, mine, {u: adapters[u]})
    ce = torch.nn.functional.cross_entropy
    assert ce(tuned, mine.target) < ce(shared, mine.target)


def test_strategies_differ_and_unknown_is_rejected(trained, protocol):
    _, student, _, _ = trained
    u = int(protocol.tune.user[0])
    mine = protocol.tune.subset(protocol.tune.user == u)
    n_i = protocol.vocab.n_intents
    p_out = torch.zeros(n_i)          # every intent statically forgotten: unlearning runs
    p_pop = torch.full((n_i,), 1.0 / n_i)
    results = {s: tune_user(student, mine, p_out, p_pop, IndividualConfig(
        strategy=s, unlearn_steps=3, finetune_steps=5)).tensors["out.bias"]
        for s in ("unlearning", "none", "focal", "oversample")}
    assert not torch.allclose(results["unlearning"], results["none"])
    assert not torch.allclose(results["focal"], results["none"])
    with pytest.raises(ValueError, match="strategy"):
        tune_user(student, mine, p_out, p_pop, IndividualConfig(strategy="smote"))


def test_checkpoint_round_trip_and_export(trained, protocol, tmp_path):
    teacher, student, _, _ = trained
    p_out = output_distribution(predict_logits(teacher, protocol.population))
    adapters = tune_users(student, protocol.tune, p_out, protocol.p_pop,
                          IndividualConfig(unlearn_steps=2, finetune_steps=3))
    save_predictor(student, tmp_path, protocol.vocab, protocol.data_config, {"note": "test"})
    ids = protocol.seqs.user_ids
    save_adapters({ids[u]: a for u, a in adapters.items()}, tmp_path)
    loaded, vocab, data_config, meta = load_predictor(tmp_path)
    assert meta == {"note": "test"} and vocab == protocol.vocab
    assert data_config == protocol.data_config and loaded.backbone_label == student.backbone_label
    assert torch.allclose(predict_logits(loaded, protocol.test), predict_logits(
        student, protocol.test), atol=1e-6)
    back = load_adapters(tmp_path)
    u = int(protocol.test.user[0])
    assert torch.equal(back[ids[u]].tensors["out.bias"], adapters[u].tensors["out.bias"])
    assert back[ids[u]].forgotten == adapters[u].forgotten
    # TorchScript export with the user's adapter baked in matches PyTorch
    mine = protocol.test.subset(protocol.test.user == u)
    path = export_torchscript(student, tmp_path / "student.pt", mine.subset(torch.arange(1)),
                              adapters[u])
    exported = load_exported(path)
    assert max_export_error(student, exported, mine, adapters[u]) < 1e-5
    assert max_export_error(student, exported, protocol.test.subset(torch.arange(7)),
                            adapters[u]) < 1e-5
    assert max_export_error(student, exported, mine) > 1e-4   # the adapter is really in it


def test_baselines(protocol, trained):
    teacher, _, _, _ = trained
    n_i = protocol.vocab.n_intents
    tune, test = protocol.tune, protocol.test
    most = MostFrequent(n_i).fit(tune, protocol.population).scores(test)
    for u in torch.unique(test.user).tolist():
        counts = torch.bincount(tune.target[tune.user == u], minlength=n_i)
        if counts.sum() and (counts == counts.max()).sum() == 1:
            assert np.all(most[(test.user == u).numpy()].argmax(1) == int(counts.argmax()))
    markov = FirstOrderMarkov(n_i).fit(tune, protocol.population)
    assert markov.scores(test).shape == (len(test), n_i)
    probs = torch.softmax(predict_logits(teacher, tune), -1).numpy()
    x, names = appendix_e_features(tune, protocol.seqs, n_i, 60, probs)
    assert x.shape == (len(tune), len(names)) and names[0] == "p_model_0"
    booster = fit_lightgbm(x, tune.target.numpy(), tune.user.numpy(), n_i)
    assert booster.predict(x).shape == (len(tune), n_i)


def test_lightgbm_table5_settings():
    big, small = lightgbm_params(500, 18), lightgbm_params(150, 18)
    assert big["num_leaves"] == 32 and big["max_depth"] == -1 and big["num_iterations"] == 2000
    assert big["early_stopping_round"] == 75 and big["random_state"] == 42
    assert small["max_depth"] == 3 and small["num_leaves"] == 3
    assert small["lambda_l1"] == small["lambda_l2"] == 1.0


def test_cached_teacher_logits_match_per_batch_distillation(trained, protocol):
    from generative.intent import load_backbone

    teacher = trained[0]
    states = []
    for cache in (True, False):
        torch.manual_seed(0)
        student = IntentPredictor.from_vocab(protocol.vocab, load_backbone(STUDENT), **OPTIONS)
        history = distill(student, teacher, protocol.population,
                          TrainConfig(steps=6, batch_size=16, lr=3e-3, backbone_lr=3e-3,
                                      cache_teacher=cache))
        states.append((history, student.state_dict()))
    assert np.allclose(states[0][0], states[1][0], atol=1e-5)
    for name, value in states[0][1].items():
        assert torch.allclose(value, states[1][1][name], atol=1e-5), name


def test_validation_protocol_uses_population_devices_only(protocol):
    from generative.intent import validation_protocol

    val = validation_protocol(protocol, n_valid=8, seed=1)
    held_out = set(torch.unique(protocol.test.user).tolist()) | set(
        torch.unique(protocol.tune.user).tolist())
    valid_users = set(torch.unique(val.tune.user).tolist()) | set(
        torch.unique(val.test.user).tolist())
    train_users = set(torch.unique(val.population.user).tolist())
    assert valid_users and not valid_users & held_out and not valid_users & train_users
    assert train_users | valid_users == set(torch.unique(protocol.population.user).tolist())
    assert len(val.population) + len(val.tune) + len(val.test) == len(protocol.population)
    with pytest.raises(ValueError, match="n_valid"):
        validation_protocol(protocol, n_valid=0)


def test_folds_hold_out_disjoint_devices_and_keep_every_window(netfp_events, protocol):
    events, _ = netfp_events
    part = events[events["user_id"].isin(events["user_id"].unique()[:60])]
    other = build_protocol(part, protocol.data_config, ProtocolConfig(n_individual=12, seed=0,
                                                                      fold=1),
                           vocab=protocol.vocab)

    def held_out(data):
        return set(torch.cat([data.tune.user, data.test.user]).unique().tolist())

    assert held_out(other) and not held_out(other) & held_out(protocol)
    assert not held_out(other) & set(other.population.user.unique().tolist())
    assert len(other.population) + len(other.tune) + len(other.test) == (
        len(protocol.population) + len(protocol.tune) + len(protocol.test))


def test_prior_shift_initialises_only_the_bias(trained, protocol):
    from generative.intent.individual import base_adapter
    from generative.intent.losses import prior_shift

    _, student, _, _ = trained
    u = int(protocol.tune.user[0])
    mine = protocol.tune.subset(protocol.tune.user == u)
    n_i = protocol.vocab.n_intents
    p_out = torch.zeros(n_i)
    p_pop = intent_distribution(protocol.population.target, n_i)
    base = base_adapter(student)
    for strategy in ("none", "unlearning"):
        config = IndividualConfig(strategy=strategy, unlearn_steps=0, finetune_steps=0,
                                  prior_shift=2.0, prior_scale=1.5)
        tensors = tune_user(student, mine, p_out, p_pop, config).tensors
        expected = base["out.bias"] + 1.5 * prior_shift(mine.target, p_pop, 2.0)
        assert torch.allclose(tensors["out.bias"], expected, atol=1e-6)
        for name in ("iat.intent_embeddings", "out.weight"):
            assert torch.equal(tensors[name], base[name])
    # the shifted start already fits the user's intents better than the shared student
    shifted = predict_with_adapters(student, mine, {u: tune_user(
        student, mine, p_out, p_pop, IndividualConfig(finetune_steps=0, unlearn_steps=0,
                                                      prior_shift=2.0))})
    ce = torch.nn.functional.cross_entropy
    assert ce(shifted, mine.target) < ce(predict_logits(student, mine), mine.target)
    # eq. 11's reference is the user's (shifted) start: with no sample of a forgotten intent
    # the retain term is minimal there, so unlearning keeps b_2 at the shifted start (up to
    # float noise; the shared-model reference moves it ~0.3 in these 30 steps)
    present = torch.zeros(n_i, dtype=torch.bool)
    present[mine.target] = True
    p_out_absent = present.double()   # F_sta (eq. 8, threshold 0.01) = the absent intents
    config = IndividualConfig(unlearn_steps=30, finetune_steps=0, prior_shift=0.5)
    adapter = tune_user(student, mine, p_out_absent, torch.full((n_i,), 1.0 / n_i), config)
    assert adapter.forgotten == torch.nonzero(~present).squeeze(1).tolist()
    start = base["out.bias"] + prior_shift(mine.target, torch.full((n_i,), 1.0 / n_i), 0.5)
    assert (adapter.tensors["out.bias"] - start).abs().max() < 0.05
    assert (start - base["out.bias"]).abs().max() > 0.5


def test_query_time_student_trains_saves_and_exports(trained, protocol, tmp_path):
    from generative.intent import load_backbone

    teacher = trained[0]
    torch.manual_seed(0)
    student = IntentPredictor.from_vocab(protocol.vocab, load_backbone(STUDENT), query_time=True,
                                         **OPTIONS)
    distill(student, teacher, protocol.population, TrainConfig(steps=10, batch_size=16, lr=3e-3,
                                                               backbone_lr=3e-3))
    save_predictor(student, tmp_path, protocol.vocab, protocol.data_config, {})
    loaded = load_predictor(tmp_path)[0]
    assert loaded.config.query_time
    test = protocol.test.subset(torch.arange(7))
    assert torch.allclose(predict_logits(loaded, test), predict_logits(student, test), atol=1e-6)
    exported = load_exported(export_torchscript(student, tmp_path / "q.pt", test))
    assert max_export_error(student, exported, test) < 1e-5
    later = dataclasses.replace(test, query_slot=(test.query_slot % 24) + 1)  # an hour on
    assert not torch.allclose(predict_logits(student, later), predict_logits(student, test))
