"""The synthesis constraint as vLLM structured outputs: request building without vLLM."""

from __future__ import annotations

import importlib.util
import re

import pytest

from uscope.synth.constraint import choice_regex
from uscope.synth.pairs import Pair
from uscope.synth.serialise import completion_text
from uscope.synth.vllm_structured import (
    VLLMSynthConfig,
    completion_request,
    engine_kwargs,
    sampling_kwargs,
    structured_outputs,
)

OPTIONS = (Pair("Games", "1", "Residence", "3"),
           Pair("Health&Fitness", "68", "Transportation hub & Restaurant", "35"))


def test_regex_is_the_outlines_constraint():
    params = structured_outputs(OPTIONS)
    assert params == {"regex": choice_regex(OPTIONS)}
    for pair in OPTIONS:
        assert re.fullmatch(params["regex"], completion_text(pair))


def test_choice_lists_every_completion_once():
    params = structured_outputs(OPTIONS + OPTIONS[:1], kind="choice")
    assert params == {"choice": sorted(completion_text(p) for p in OPTIONS)}
    with pytest.raises(ValueError, match="kind"):
        structured_outputs(OPTIONS, kind="grammar")


def test_sampling_and_online_request_carry_the_constraint():
    kwargs = sampling_kwargs(OPTIONS, temperature=0.7, seed=3)
    assert kwargs["temperature"] == 0.7 and kwargs["seed"] == 3
    assert kwargs["max_tokens"] >= max(len(completion_text(p)) for p in OPTIONS)
    assert kwargs["structured_outputs"] == {"regex": choice_regex(OPTIONS)}
    body = completion_request("my-model", "Profile: x\nMon 08h |", OPTIONS, kind="choice")
    assert body["model"] == "my-model" and body["prompt"].endswith("|")
    assert body["structured_outputs"]["choice"] == sorted(completion_text(p) for p in OPTIONS)
    assert "seed" not in body


def test_engine_enables_lora_only_with_an_adapter():
    assert "enable_lora" not in engine_kwargs(VLLMSynthConfig(model="m"))
    assert engine_kwargs(VLLMSynthConfig(model="m", lora_path="/a"))["enable_lora"] is True


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_decoder_without_vllm_names_the_install():
    from uscope.synth.vllm_structured import VLLMDecoder

    with pytest.raises(ImportError, match="uscope\\[vllm\\]"):
        VLLMDecoder(VLLMSynthConfig(model="m"))
