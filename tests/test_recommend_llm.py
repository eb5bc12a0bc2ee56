"""The llm strategy: answers come only from the unused catalogue (real SmolLM2 for scoring, a
tiny Llama built from a config for the outlines-constrained explanation)."""

from __future__ import annotations

import pytest

from uscope.profile import profile_users
from uscope.recommend import Recommender
from uscope.recommend.llm import LLMStrategy, full_sequence_logprobs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]


@pytest.fixture(scope="module")
def small_population(simulated):
    events = simulated.events[simulated.events["user_id"].isin(["0", "1", "2", "3"])]
    return events, profile_users(events)


def tiny_llama():
    """A 2-layer Llama with a byte-level BPE tokenizer trained in memory (plumbing only)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["Answer: Games Music Travel Shopping News Reason: the user likes apps",
              "Profile of an anonymous smartphone user. Choose from: Books, Finance."]
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>",
                                        pad_token="<pad>", eos_token="<eos>")
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval(), tokenizer


def test_smollm2_ranks_only_unused_catalogue_items(small_population, smollm2):
    events, profiles = small_population
    strategy = LLMStrategy()
    strategy._model, strategy._tokenizer = smollm2
    rec = Recommender(profiles, events, strategy)
    user = profiles.user_ids[0]
    used = set(events.loc[events["user_id"] == user, "app_category"])
    items = rec.recommend(user, kind="intent", k=4)
    assert len(items) == 4
    assert {i.item for i in items} <= set(events["app_category"]) - used
    assert all(i.score <= 0 for i in items)  # mean log-probabilities
    assert [i.score for i in items] == sorted((i.score for i in items), reverse=True)


def test_explanation_answer_is_constrained_to_candidates(small_population):
    events, profiles = small_population
    strategy = LLMStrategy(reasoning_tokens=8)
    strategy._model, strategy._tokenizer = tiny_llama()
    rec = Recommender(profiles, events, strategy)
    user = profiles.user_ids[1]
    used = set(events.loc[events["user_id"] == user, "app_category"])
    top = rec.recommend(user, kind="intent", k=3, explain=True)[0]
    answer = top.rationale.split("Answer: ")[-1]
    assert answer in set(events["app_category"]) - used  # random weights, still in the set


def test_cached_prompt_scores_equal_full_sequence_scores():
    """answer_logprobs reuses the prompt's KV cache; it must score exactly what one full
    forward pass over prompt + answer scores (different answer lengths, padded batches)."""
    model, tokenizer = tiny_llama()
    strategy = LLMStrategy(batch_size=3)
    strategy._model, strategy._tokenizer = model, tokenizer
    prompt = "Profile of an anonymous smartphone user. Choose from: Books, Finance.\n"
    answers = ["Books", "Finance", "Games Music Travel", "News", "Shopping"]
    got = strategy.answer_logprobs(prompt, answers)
    expected = full_sequence_logprobs(model, tokenizer, prompt, answers)
    assert got.shape == (5,) and len(set(got.round(4))) > 1
    assert got == pytest.approx(expected, abs=1e-5)
