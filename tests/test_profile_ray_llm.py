"""The replay side of ``--engine ray --backend vllm`` (``uscope.profile.ray_llm``): a bucket
is profiled round by round from answers on disk, asking only for what it lacks. Real netfp
users, the real grounded and free templates and the real encoder; the answers are written
here, where the vLLM processor would write them (that path runs in ``test_vllm_cpu.py``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from uscope.profile import ProfileConfig
from uscope.profile.backends import GenerationConfig, generate_with_retries
from uscope.profile.backends.base import AnswersPending
from uscope.profile.backends.vllm_offline import VLLMConfig
from uscope.profile.batch import JobConfig
from uscope.profile.encoder import ProfileEncoder
from uscope.profile.pipeline import build_requests, profile_chunk
from uscope.profile.profileset import ProfileSet
from uscope.profile.prompting import load_template
from uscope.profile.ray_engine import BUCKET, WorkerSpec, _tag_buckets, bucket_file, llm_stage
from uscope.profile.ray_llm import (
    ASKS,
    ReplayedVLLM,
    answers_dir,
    ask_key,
    engine_placement,
    profile_in_rounds,
    read_answers,
    write_atomic,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")
VLLM = VLLMConfig(model="/models/llama", lora_path="/adapters/dpo")


@pytest.fixture(scope="module")
def encoder(minilm):
    return ProfileEncoder(loaded=minilm)


def requests_of(netfp_events, template: str, n: int = 3):
    table, _ = netfp_events
    counts = table.groupby("user_id").size()
    users = sorted(counts[counts >= 20].index)[:n]
    events = table[table["user_id"].isin(users)]
    return build_requests(events, users, load_template(template), ProfileConfig().features)


def pending(call) -> list:
    with pytest.raises(AnswersPending) as caught:
        call()
    return caught.value.asks


def test_grounded_bucket_asks_once_a_round_then_writes_its_rows(netfp_events, encoder):
    """Round 1 asks every user's regex decode (greedy); a user left without free text is asked
    again, sampled, in round 2; with every answer on hand the rows are written."""
    requests = requests_of(netfp_events, "grounded_v1")
    template = load_template("grounded_v1")
    config = ProfileConfig(batch_size=len(requests), backoff_s=0.0)
    answers: dict[str, tuple[str, bool]] = {}

    def replay():
        backend = ReplayedVLLM(VLLM, GenerationConfig(), answers)
        return profile_chunk(requests, backend, encoder, template, config)

    first = pending(replay)
    assert len(first) == len(requests)
    assert {p["temperature"] for _, _, p in first} == {0.0}
    assert all("regex" in p["structured_outputs"] for _, _, p in first)
    kept = "This user is mostly on social apps in the evening."
    for i, (key, _, params) in enumerate(first):
        answer = "{}\n" + (kept if i else "")  # the first user: no free text
        answers[key] = (answer, True)
    second = pending(replay)
    assert len(second) == 1 and second[0][2]["temperature"] == 0.7
    assert second[0][1] == first[0][1]  # the same chat, sampled
    answers[second[0][0]] = ("{}\n" + kept, True)
    rows = replay().frame
    assert rows["user_id"].tolist() == [r.user_id for r in requests]
    assert (rows["status"] == "ok").all() and set(rows["backend"]) == {"vllm"}
    assert set(rows["model"]) == {"/models/llama+/adapters/dpo"}
    assert all(text.endswith(kept) for text in rows["profile"])


def test_free_bucket_replays_retries_without_counting_the_wait_as_a_failure(netfp_events):
    """A pending answer is no failed attempt; an answer that fails (no sentence end) is
    retried with the same greedy request, which replays the same answer: retries run out."""
    requests = requests_of(netfp_events, "profile_v2", n=2)
    generation = GenerationConfig(max_new_tokens=24)
    answers: dict[str, tuple[str, bool]] = {}
    backend = ReplayedVLLM(VLLM, generation, answers)
    asks = pending(lambda: generate_with_retries(backend, requests, retries=2, backoff_s=0))
    assert len(asks) == 2 and asks[0][1] == requests[0].prompt.messages
    answers[asks[0][0]] = ("This user plays games at night. They also", False)
    answers[asks[1][0]] = ("no sentence end here", False)
    outcomes = generate_with_retries(backend, requests, retries=2, backoff_s=0)
    assert outcomes[0].text == "This user plays games at night." and outcomes[0].attempts == 1
    assert outcomes[1].text is None and outcomes[1].attempts == 3
    assert "no complete sentence" in outcomes[1].error


def test_sampled_free_requests_ask_once_per_seed(netfp_events):
    requests = requests_of(netfp_events, "profile_v2", n=2)
    backend = ReplayedVLLM(VLLM, GenerationConfig(temperature=0.7, seed=5), {})
    asks = pending(lambda: backend.generate(requests + requests[:1]))
    assert [p["seed"] for _, _, p in asks] == [5, 6, 7]  # a seed a request: three asks


def test_answers_are_keyed_by_model_chat_and_settings(tmp_path):
    chat = [{"role": "user", "content": "hi"}]
    params = {"max_tokens": 8, "temperature": 0.0}
    key = ask_key("m", chat, params)
    assert key == ask_key("m", [{"content": "hi", "role": "user"}],
                          {"temperature": 0.0, "max_tokens": 8})  # key order does not count
    assert key != ask_key("m", [{"role": "user", "content": "hi!"}], params)
    assert key != ask_key("m+adapter", chat, params)
    assert key != ask_key("m", chat, {**params, "temperature": 0.7})
    folder = answers_dir(tmp_path, 3)
    assert folder.name == "b000003"
    write_atomic(pa.table({"key": [key], "text": ["first"], "stopped": [True]}),
                 folder / "a.parquet")
    write_atomic(pa.table({"key": [key, "other"], "text": ["again", "x"],
                           "stopped": [False, False]}), folder / "b.parquet")
    assert read_answers(folder) == {key: ("first", True), "other": ("x", False)}
    assert not list(folder.glob(".*.tmp"))
    assert read_answers(tmp_path / "none") == {}


def test_llm_stage_and_engine_placement():
    vllm = WorkerSpec(backend="vllm", model="m")
    assert llm_stage(vllm, cluster_gpus=8) == "ray-data-llm"
    assert llm_stage(vllm, cluster_gpus=0) == "actor"  # CPUs: no engine restarts a round
    assert llm_stage(WorkerSpec(backend="vllm", llm_stage="actor"), cluster_gpus=8) == "actor"
    assert llm_stage(WorkerSpec(backend="vllm", llm_stage="ray-data-llm"), 0) == "ray-data-llm"
    assert llm_stage(WorkerSpec(), cluster_gpus=8) == "actor"
    with pytest.raises(ValueError, match="needs --backend vllm"):
        llm_stage(WorkerSpec(backend="transformers", llm_stage="ray-data-llm"), 0)
    with pytest.raises(ValueError, match="actor or ray-data-llm"):
        llm_stage(WorkerSpec(backend="vllm", llm_stage="serve"), 0)
    assert engine_placement(0.0, 2) == {"bundle_per_worker": {"CPU": 1}}
    assert engine_placement(4.0, 4) == {"bundle_per_worker": {"CPU": 1, "GPU": 1.0}}


def test_cli_refuses_llm_stage_where_it_cannot_apply(tmp_path, netfp_events):
    from typer.testing import CliRunner

    from uscope.cli import app
    from uscope.data import save_events

    table, _ = netfp_events
    save_events(table.head(50), tmp_path / "events.parquet")
    base = ["profile", str(tmp_path / "events.parquet"), "--out", str(tmp_path / "p.parquet"),
            "--no-progress"]
    local = CliRunner().invoke(app, [*base, "--backend", "heuristic", "--llm-stage", "actor"])
    assert local.exit_code == 2 and "apply to --engine ray" in local.output
    heuristic = CliRunner().invoke(app, [*base, "--backend", "heuristic", "--engine", "ray",
                                         "--llm-stage", "ray-data-llm"])
    assert heuristic.exit_code == 2 and "needs --backend vllm" in heuristic.output
    assert not (tmp_path / "p.parquet").exists()


@dataclass
class InProcessPass:
    """The replay pass without a Ray cluster: the job's own tagging, then one actor call a
    bucket (the Ray pass runs in ``test_vllm_cpu.py``)."""

    events: pd.DataFrame
    bounds: np.ndarray
    workers: int = 1

    def run(self, todo, actor, args, gpus=0.0):
        worker = actor(*args)
        tagged = _tag_buckets(self.events, self.bounds, (0, 1), todo)
        for _, group in tagged.groupby(BUCKET):
            yield worker(group)


def answers_from_disk_asks(calls: list[int], silent: int = 0):
    """Answers each ask on disk as an engine would write them: a grounded answer with free
    text, except for the first ``silent`` greedy asks; records how many asks each round had."""
    def answer(parts):
        asks = pq.read_table(parts / ASKS).to_pandas()
        calls.append(len(asks))
        greedy = 0
        for bucket, rows in asks.groupby("bucket"):
            texts = []
            for params in rows["params"]:
                greedy += json.loads(params)["temperature"] == 0
                quiet = json.loads(params)["temperature"] == 0 and greedy <= silent
                texts.append("{}\n" + ("" if quiet else "This user is often online."))
            write_atomic(pa.table({"key": rows["key"].tolist(), "text": texts,
                                   "stopped": [True] * len(rows)}),
                         answers_dir(parts, int(bucket)) / f"round{len(calls)}.parquet")
    return answer


def test_rounds_answer_until_every_bucket_is_written_and_resume_from_disk(netfp_events,
                                                                           tmp_path):
    table, _ = netfp_events
    counts = table.groupby("user_id").size()
    users = sorted(counts[counts >= 20].index)[:4]
    events = table[table["user_id"].isin(users)].reset_index(drop=True)
    buckets = InProcessPass(events, np.asarray(users[::2], dtype=str))
    spec = WorkerSpec(backend="vllm", model="/models/llama")
    config = JobConfig(profile=ProfileConfig(batch_size=2))
    parts = tmp_path / "parts"
    calls: list[int] = []
    # the first user's greedy answer has no free text: a sampled round follows
    rounds = profile_in_rounds(buckets, frozenset({0, 1}), parts, spec, config, 0.0,
                               answer=answers_from_disk_asks(calls, silent=1))
    assert rounds == 2 and calls == [4, 1]
    chunks = [ProfileSet.load(bucket_file(parts, b)).frame for b in (0, 1)]
    assert [u for c in chunks for u in c["user_id"]] == users
    assert all((c["status"] == "ok").all() for c in chunks)
    assert not (parts / ASKS).exists()  # the last replay asked nothing

    bucket_file(parts, 1).unlink()  # as after a kill: bucket 1 unwritten, its answers on disk
    again: list[int] = []
    assert profile_in_rounds(buckets, frozenset({0, 1}), parts, spec, config, 0.0,
                             answer=answers_from_disk_asks(again)) == 0
    assert again == []  # replayed from disk, nothing asked
    rewritten = ProfileSet.load(bucket_file(parts, 1)).frame
    pd.testing.assert_frame_equal(rewritten.drop(columns="created_at"),
                                  chunks[1].drop(columns="created_at"))


def test_rounds_stop_with_an_error_when_asks_go_unanswered(netfp_events, tmp_path):
    table, _ = netfp_events
    users = sorted(table["user_id"].unique())[:2]
    events = table[table["user_id"].isin(users)].reset_index(drop=True)
    calls: list[int] = []
    with pytest.raises(RuntimeError, match="1 buckets still ask for answers after 4 rounds"):
        profile_in_rounds(InProcessPass(events, np.asarray(users[:1], dtype=str)),
                          frozenset({0}), tmp_path, WorkerSpec(backend="vllm", model="m"),
                          JobConfig(), 0.0, answer=lambda parts: calls.append(1))
    assert len(calls) == 4  # retries (2) + 2 rounds, then one last replay
