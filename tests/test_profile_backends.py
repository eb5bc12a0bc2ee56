"""Profile writers pi_theta (eq. 23): heuristic, OpenAI-compatible (against a real local HTTP
server), vLLM request building, transformers plumbing on a tiny model; retries and failures."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from uscope.data.schema import validate_events
from uscope.profile import JobConfig, ProfileConfig, ProfileEncoder, profile_users, run_profile_job
from uscope.profile.backends import GenerationConfig, ProfileRequest, generate_with_retries
from uscope.profile.backends.heuristic import HeuristicBackend, heuristic_profile
from uscope.profile.backends.openai_compat import (
    OpenAIBackend,
    OpenAIConfig,
    chat_payload,
    parse_chat_response,
)
from uscope.profile.backends.vllm_offline import (
    VLLMConfig,
    conversations,
    engine_kwargs,
    lora_request_args,
    sampling_kwargs,
)
from uscope.profile.population import iter_features
from uscope.profile.prompting import load_template

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def make_events(users: dict[str, list[tuple[str, str, str, str | None]]]) -> pd.DataFrame:
    """{user: [(timestamp, app, category, place), ...]} -> validated event table."""
    rows = [(u, *r) for u, rs in users.items() for r in rs]
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "app", "app_category",
                                        "location_category"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return validate_events(frame)


POPULATION = {
    "gamer": [("2024-01-01 22:00", "Arena", "Games", "Residence"),
              ("2024-01-01 23:00", "Arena", "Games", "Residence"),
              ("2024-01-02 12:00", "Chat", "Social", "Campus")],
    "reader": [("2024-01-01 07:00", "Daily", "News", "Metro"),
               ("2024-01-02 07:10", "Daily", "News", "Metro"),
               ("2024-01-02 07:20", "Mail", "Office", "Metro")],
    "slow-user": [("2024-01-03 10:00", "Maps", "Navigation", None)],
    "empty-user": [("2024-01-03 11:00", "Maps", "Navigation", None)],
    "flaky-user": [("2024-01-03 12:00", "Shop", "Shopping", "Mall")],
}


def requests_for(events: pd.DataFrame, users: list[str], template=None) -> list[ProfileRequest]:
    template = template or load_template()
    return [ProfileRequest(f.user_id, template.render(f), f) for f in iter_features(events, users)]


class ChatServer:
    """A real OpenAI-compatible HTTP endpoint whose answer depends on the user in the prompt."""

    def __init__(self, delay_s: float = 0.05, slow_s: float = 3.0, structured=None):
        """``structured(body) -> text`` answers requests with ``structured_outputs``."""
        self.calls: dict[str, int] = {}
        self.payloads: list[dict] = []
        self.structured = structured
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.payloads.append(body)
                if "structured_outputs" in body and server.structured is not None:
                    content = server.structured(body)
                    self._send(200, {"choices": [{"message": {"role": "assistant",
                                                              "content": content}}]})
                    return
                text = body["messages"][-1]["content"]
                key = next((k for k in ("slow", "empty", "flaky") if f'"{k}-app"' in text), "ok")
                with server.lock:
                    server.calls[key] = server.calls.get(key, 0) + 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    n = server.calls[key]
                try:
                    time.sleep(slow_s if key == "slow" else delay_s)
                    if key == "flaky" and n == 1:
                        self._send(503, {"error": "overloaded"})
                    else:
                        content = "" if key == "empty" else "A profile. " + text.splitlines()[-1]
                        self._send(200, {"choices": [{"message": {"role": "assistant",
                                                                  "content": content}}]})
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def events():
    renamed = {u: [(t, f"{u.split('-')[0]}-app" if "-" in u else a, c, p) for t, a, c, p in rs]
               for u, rs in POPULATION.items()}
    return make_events(renamed)


@pytest.fixture(scope="module")
def encoder(minilm):
    return ProfileEncoder(loaded=minilm)


def test_heuristic_profiles_are_deterministic_and_faithful(events):
    (gamer, reader) = iter_features(events, ["gamer", "reader"])
    text = heuristic_profile(gamer)
    assert text == heuristic_profile(gamer)
    assert "Games" in text and "Social" in text and "Residence" in text and "Campus" in text
    assert "evening" in text
    assert "News" in heuristic_profile(reader) and "Metro" in heuristic_profile(reader)
    (nobody,) = iter_features(events, ["nobody"])
    assert "cold start" in heuristic_profile(nobody)
    out = HeuristicBackend().generate(requests_for(events, ["gamer", "reader"]))
    assert [g.text for g in out] == [text, heuristic_profile(reader)]


def test_openai_backend_answers_in_order_within_the_concurrency_limit(events, server):
    backend = OpenAIBackend(OpenAIConfig(base_url=server.url, model="teacher", concurrency=2,
                                         timeout_s=5))
    reqs = requests_for(events, ["gamer", "reader"] * 3)
    out = backend.generate(reqs)
    assert all(g.ok for g in out)
    assert [g.text.splitlines()[-1][-40:] for g in out] == \
        [r.prompt.user.splitlines()[-1][-40:] for r in reqs]
    assert 1 <= server.max_in_flight <= 2


def test_retries_timeouts_and_empty_text(events, server):
    backend = OpenAIBackend(OpenAIConfig(base_url=server.url, timeout_s=1.0, concurrency=4))
    outcomes = generate_with_retries(
        backend, requests_for(events, ["gamer", "flaky-user", "empty-user", "slow-user"]),
        retries=2, backoff_s=0.0)
    by_user = {o.user_id: o for o in outcomes}
    assert by_user["gamer"].error is None and by_user["gamer"].attempts == 1
    assert by_user["flaky-user"].error is None and by_user["flaky-user"].attempts == 2
    assert by_user["empty-user"].text is None
    assert by_user["empty-user"].error == "empty text (after 3 attempts)"
    assert "timed out after 1 s" in by_user["slow-user"].error
    assert server.calls["empty"] == 3 and server.calls["slow"] == 3


def test_failed_users_are_kept_with_reasons_and_the_batch_continues(events, server, encoder,
                                                                     tmp_path):
    backend = OpenAIBackend(OpenAIConfig(base_url=server.url, timeout_s=1.0))
    config = ProfileConfig(template="profile_v2", batch_size=2, retries=1, backoff_s=0.0)
    ps = profile_users(events, backend, encoder=encoder, config=config)  # free-form answers
    assert sorted(ps.user_ids) == sorted(POPULATION)
    failures = dict(zip(ps.failures["user_id"], ps.failures["error"]))
    assert set(failures) == {"slow-user", "empty-user"}
    assert failures["empty-user"] == "empty text (after 2 attempts)"
    emb = ps.embeddings()
    ok = (ps.frame["status"] == "ok").to_numpy()
    assert emb.shape == (5, 384) and not pd.isna(emb[ok]).any() and pd.isna(emb[~ok]).all()
    summary = run_profile_job(events, tmp_path / "p.parquet", backend, encoder,
                              JobConfig(profile=config, chunk_size=2))
    assert summary.n_failed == 2 and summary.n_profiled == 5
    text = summary.render()
    assert "failed: 2" in text and "failed empty-user: empty text" in text


def test_unreachable_endpoint_is_a_reason_not_a_crash(events):
    backend = OpenAIBackend(OpenAIConfig(base_url="http://127.0.0.1:9/v1", timeout_s=1))
    (out,) = backend.generate(requests_for(events, ["gamer"]))
    assert out.text is None and "cannot reach" in out.error


def test_openai_wire_format(events):
    (req,) = requests_for(events, ["gamer"])
    body = chat_payload(req, "m", GenerationConfig(max_new_tokens=7))
    assert body == {"model": "m", "messages": req.prompt.messages, "max_tokens": 7,
                    "temperature": 0.0}
    assert parse_chat_response({"choices": [{"message": {"content": "hi"}}]}) == "hi"
    assert parse_chat_response({"choices": [{"message": {"content": None}}]}) == ""
    with pytest.raises(ValueError, match="malformed"):
        parse_chat_response({"error": "x"})


def test_vllm_request_building_without_vllm(events):
    reqs = requests_for(events, ["gamer", "reader"])
    assert conversations(reqs) == [r.prompt.messages for r in reqs]
    config = VLLMConfig(model="meta-llama/Llama-3.1-8B-Instruct", tensor_parallel_size=4,
                        lora_path="/adapters/dpo")
    kwargs = engine_kwargs(config)
    assert kwargs["tensor_parallel_size"] == 4 and kwargs["enable_lora"] is True
    assert kwargs["max_lora_rank"] == 16 and "max_model_len" not in kwargs
    assert lora_request_args(config) == ("profile-adapter", 1, "/adapters/dpo")
    assert lora_request_args(VLLMConfig(model="m")) is None
    assert "enable_lora" not in engine_kwargs(VLLMConfig(model="m"))
    greedy = sampling_kwargs(GenerationConfig(max_new_tokens=12))
    assert greedy["max_tokens"] == 12 and greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0
    sampled = sampling_kwargs(GenerationConfig(temperature=0.7, top_p=0.9, seed=3))
    assert sampled["top_p"] == 0.9 and sampled["seed"] == 3
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        VLLMConfig(model="m", tensor_parallel_size=0)
    assert "kv_cache_memory_bytes" not in kwargs
    assert engine_kwargs(VLLMConfig(model="m", kv_cache_gib=1.5))["kv_cache_memory_bytes"] == \
        3 * 2 ** 29
    with pytest.raises(ValueError, match="kv_cache_gib"):
        VLLMConfig(model="m", kv_cache_gib=0)


def test_vllm_missing_is_a_clear_error():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here; the missing-extra message cannot be checked")
    from uscope.profile.backends.vllm_offline import VLLMBackend

    with pytest.raises(ImportError, match=r"uscope\[vllm\]"):
        VLLMBackend(VLLMConfig(model="m"))


@pytest.fixture(scope="module")
def tiny_chat_lm():
    """A tiny random Llama with a word-level tokenizer trained in memory (plumbing only)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = ["system user assistant profile of this anonymous smartphone user uses apps",
              "Games Social News Office Residence Campus Metro facts sessions per day"]
    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(corpus, trainers.WordLevelTrainer(
        special_tokens=["<unk>", "<pad>", "<eos>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>",
                                  eos_token="<eos>")
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
                         "{% if add_generation_prompt %}assistant {% endif %}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return LlamaForCausalLM(config).eval(), tok


def test_transformers_backend_batches_with_left_padding(events, tiny_chat_lm):
    from uscope.profile.backends.hf import TransformersBackend, chat_texts

    backend = TransformersBackend(loaded=tiny_chat_lm, label="tiny",
                                  generation=GenerationConfig(max_new_tokens=4, complete_sentences=False,
                                                              repetition_penalty=1.0))
    assert backend.name == "transformers" and backend.model == "tiny"
    reqs = requests_for(events, ["gamer", "reader", "nobody"])  # prompts of different lengths
    batched = backend.generate(reqs)
    single = [backend.generate([r])[0] for r in reqs]
    assert [g.text for g in batched] == [g.text for g in single]
    assert backend.tokenizer.padding_side == "left"
    _, tok = tiny_chat_lm
    tok_plain = type(tok)(tokenizer_object=tok.backend_tokenizer, pad_token="<pad>")
    with pytest.raises(ValueError, match="chat template"):
        chat_texts(tok_plain, reqs)


def test_vllm_server_command_and_a_server_that_dies_says_why(tmp_path):
    import importlib.util

    from uscope.profile.backends.vllm_server import SERVE_MODULE, VLLMServer, serve_command

    command = serve_command("/models/m", 8123, served_name="m", args=["--dtype", "float32"])
    assert command[1:3] == ["-m", SERVE_MODULE]
    assert command[3:] == ["--model", "/models/m", "--host", "127.0.0.1", "--port", "8123",
                           "--served-model-name", "m", "--dtype", "float32"]
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here: tests/test_vllm_cpu.py starts a real server")
    server = VLLMServer("/models/m", log=tmp_path / "serve.log", ready_timeout_s=60)
    with pytest.raises(RuntimeError, match=r"(?s)serve exited with 1.*No module named 'vllm'"):
        server.__enter__()
    assert (tmp_path / "serve.log").exists()
