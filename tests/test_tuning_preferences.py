"""DPO data and objective (Sec. 5.3, eq. 27): the stated consistency score, triplets that always
prefer the more consistent profile, and eq. 27's invariants (log 2 when the policy is its
reference; checked on the real SmolLM2 with a fresh LoRA adapter)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uscope.profile.backends.heuristic import heuristic_profile
from uscope.profile.features import FeatureConfig
from uscope.profile.pipeline import build_requests
from uscope.profile.prompting import load_template
from uscope.tuning.objective import check_preferences, dpo_loss
from uscope.tuning.preferences import (
    build_triplets,
    consistency_score,
    evidence_names,
    mentioned,
    used_names,
    vocabulary,
)


@pytest.fixture(scope="module")
def population(simulated):
    events = simulated.events
    users = sorted(events["user_id"].unique())
    return build_requests(events, users, load_template(), FeatureConfig())


@pytest.fixture(scope="module")
def features(population):
    return {r.user_id: r.features for r in population}


def test_mentions_match_whole_names_longest_first():
    names = {"Business", "Business affairs", "Games", "News"}
    assert mentioned("Seen at business affairs, reads NEWS.", names) == {"Business affairs",
                                                                          "News"}
    assert mentioned("Uses Business apps at Business affairs", names) == {"Business",
                                                                          "Business affairs"}
    assert mentioned("Newsletters and endgames", names) == set()  # whole words only
    assert mentioned("Social Networking", {"Social_Networking"}) == {"Social_Networking"}


def test_consistency_score_bounds_and_invariants(features):
    names = vocabulary(features.values())
    for f in features.values():
        evidence = evidence_names(f)
        unused = sorted(names - used_names(f))
        assert consistency_score(" and ".join(evidence), f, names) == 1.0  # all evidence, no lie
        assert consistency_score(" and ".join(unused), f, names) == pytest.approx(-1.0)
        assert consistency_score("", f, names) == 0.0
        assert consistency_score(heuristic_profile(f), f, names) == 1.0
        # naming one unused place or category on top of the evidence costs exactly its share
        extra = " and ".join([*evidence, unused[0]])
        assert consistency_score(extra, f, names) == pytest.approx(1 - 1 / (len(evidence) + 1))


def test_triplets_always_prefer_the_more_consistent_profile(population, features):
    names = vocabulary(features.values())
    samples = {r.user_id: [heuristic_profile(r.features)] for r in population}
    rows, report = build_triplets(population, samples, rejected="mismatched")
    assert report.written == len(rows) > 0
    assert report.written + sum(report.dropped.values()) == report.users == len(population)
    for row in rows:
        f = features[row["user_id"]]
        c_w = consistency_score(row["chosen"][0]["content"], f, names)
        c_l = consistency_score(row["rejected"][0]["content"], f, names)
        assert c_w > c_l and row["chosen_consistency"] == round(c_w, 4)
        assert row["rejected"][0]["content"] != heuristic_profile(f)  # another user's profile
        assert row["prompt"][-1]["role"] == "user"
    # a margin no pair can clear drops every triplet, and says so
    none, dropped = build_triplets(population, samples, margin=2.0)
    assert none == [] and dropped.dropped["chosen not more consistent than rejected"] == \
        len(population)


def test_best_of_several_samples_is_chosen_and_heuristic_can_be_rejected(population, features):
    first = population[0]
    f = first.features
    good = " and ".join(evidence_names(f))
    samples = {first.user_id: ["Nothing useful here.", good, "   "]}
    rows, report = build_triplets([first], samples, rejected="heuristic")
    # the best sample names all the evidence but so does the heuristic text: not preferred
    assert rows == [] and report.dropped["chosen not more consistent than rejected"] == 1
    vague = {first.user_id: ["Nothing useful here."]}
    assert build_triplets([first], vague, rejected="heuristic")[0] == []
    with pytest.raises(ValueError, match="rejected must be"):
        build_triplets([first], samples, rejected="random")


def test_faithfulness_pairs_prefer_a_sample_without_contradictions(population, features):
    from uscope.profile.faithfulness import contradictions
    from uscope.tuning.preferences import faithful_pair

    names = vocabulary(features.values())
    first = population[0]
    f = first.features
    unused = min(names - used_names(f))
    faithful = " and ".join(evidence_names(f)) + "."
    vague, lying = "A phone user.", f"They love {unused}. They use {unused} daily at 97%."
    rows, _ = build_triplets([first], {first.user_id: [vague, lying, faithful]},
                             rejected="contradicting", names=names)
    (row,) = rows
    assert row["chosen"][0]["content"] == faithful  # faithful and the most informative
    assert row["rejected"][0]["content"] == lying
    assert row["rejected_refuted_claims"] == len(contradictions(lying, f, names)) >= 3
    assert faithful_pair([vague, faithful], f, names) == "no contradicting sample"
    assert faithful_pair([vague, lying], f, names) == \
        "no faithful sample names the user's evidence"  # vague is not preferred to a lie
    assert faithful_pair([lying], f, names) == "no sample without a contradiction"
    _, none = build_triplets([first], {first.user_id: [lying]}, rejected="contradicting",
                             names=names)
    assert none.written == 0 and none.dropped["no sample without a contradiction"] == 1


def test_eq27_invariants():
    chosen, rejected = torch.tensor([-10.0, -3.0]), torch.tensor([-12.0, -2.0])
    # policy == reference: every margin is 0 and the loss is log 2
    assert float(dpo_loss(chosen, rejected, chosen, rejected, beta=0.1)) == \
        pytest.approx(math.log(2))
    # larger preference for y_w than the reference has -> lower loss; beta sharpens it
    ref_c, ref_r = chosen - 1.0, rejected + 1.0
    losses = [float(dpo_loss(chosen, rejected, ref_c, ref_r, beta=b)) for b in (0.1, 1.0)]
    assert losses[1] < losses[0] < math.log(2)
    assert float(dpo_loss(chosen, rejected, ref_c, ref_r, beta=0.5)) == pytest.approx(
        float(-torch.nn.functional.logsigmoid(torch.tensor(0.5 * 2.0))))
    policy = chosen.clone().requires_grad_(True)
    dpo_loss(policy, rejected, chosen, rejected, beta=0.1).backward()
    assert (policy.grad < 0).all()  # descent raises log pi(y_w | x)
    with pytest.raises(ValueError):
        dpo_loss(chosen, rejected, chosen, rejected, beta=0.0)


@pytest.mark.slow
@pytest.mark.usefixtures("torch_one_thread")
def test_fresh_adapter_is_its_own_reference_on_smollm2(population, smollm2):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = smollm2
    samples = {r.user_id: [heuristic_profile(r.features)] for r in population}
    rows, _ = build_triplets(population, samples)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    try:
        check = check_preferences(peft_model, tokenizer, rows[:2], beta=0.1)
        assert check.loss == pytest.approx(math.log(2), abs=1e-6)  # B = 0: pi_theta == pi_ref
        assert check.mean_margin == pytest.approx(0.0, abs=1e-4)
        with torch.no_grad():  # move the adapter: the policy now differs from its reference
            for name, parameter in peft_model.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.from_numpy(
                        np.random.default_rng(0).normal(0, 0.05, parameter.shape)).float())
        moved = check_preferences(peft_model, tokenizer, rows[:2], beta=0.1)
        assert moved.mean_margin != pytest.approx(0.0, abs=1e-3)
    finally:
        peft_model.unload()  # leave the shared SmolLM2 fixture as it was


@pytest.mark.slow
@pytest.mark.usefixtures("torch_one_thread")
def test_best_of_smollm2_samples_is_logged_and_chosen(population, smollm2, tmp_path):
    from uscope.profile.backends import GenerationConfig
    from uscope.profile.backends.hf import TransformersBackend
    from uscope.tuning.joblog import JobLog
    from uscope.tuning.preferences import best_sample, collect_samples

    requests = population[:3]
    writer = TransformersBackend(loaded=smollm2, generation=GenerationConfig(
        max_new_tokens=24, temperature=0.9, seed=1, complete_sentences=False))
    log = JobLog(tmp_path / "samples.jsonl", resume=False)
    texts = collect_samples(requests, writer, log, samples=2, batch_size=3)
    assert set(log.records) == {r.user_id for r in requests}
    assert all(len(texts[r.user_id]) == 2 for r in requests)  # two real samples per user
    names = vocabulary(r.features for r in population)
    rows, report = build_triplets(requests, texts, names=names)
    assert report.written + sum(report.dropped.values()) == len(requests)
    for row in rows:
        f = next(r.features for r in requests if r.user_id == row["user_id"])
        assert row["chosen"][0]["content"] == best_sample(texts[row["user_id"]], f, names)[0]
