"""vLLM executed for real, on its CPU build: the offline engine (batched ``LLM.chat`` with
``SamplingParams``, structured outputs for grounded profiles and synthesis, a LoRA adapter
trained by ``recipes/dpo.py``) and ``vllm serve`` behind ``--backend openai`` write the same
``ProfileSet`` rows as the transformers backend for the same prompts (texts may differ).

vLLM's CPU build pins an older transformers, so these tests run in the second venv that
``make vllm-env`` builds; ``make test`` runs them there with ``-m vllm`` (in the main venv they
skip: vLLM is not installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uscope.data import save_events
from uscope.profile import ProfileConfig, profile_users
from uscope.profile.backends import GenerationConfig
from uscope.profile.backends.vllm_offline import VLLMBackend, VLLMConfig, engine_kwargs
from uscope.profile.backends.vllm_server import VLLMServer
from uscope.profile.profileset import COLUMNS, ProfileSet

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# vLLM on every core (it keeps one for its front end by default), a 1 GiB KV cache
VLLM_ENV = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "RAY_USAGE_STATS_ENABLED": "0",
       "PYTHONWARNINGS": "ignore::FutureWarning", **VLLM_ENV}
N_USERS = 4
FREE = ProfileConfig(template="profile_v2", batch_size=N_USERS)
GROUNDED = ProfileConfig(batch_size=N_USERS)  # grounded_v1: structured outputs
# free texts kept whole: the strong test adapter may stop mid-list, which is no engine's fault
SHORT = GenerationConfig(max_new_tokens=48, complete_sentences=False)
SERVED_NAME = "smollm2"


def run(*command: str | Path, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], check=False, cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def model_dir() -> str:
    from uscope.models import smollm2_hf_dir

    return str(smollm2_hf_dir())


@pytest.fixture(scope="module")
def events(netfp_events) -> pd.DataFrame:
    """The first real netfp devices with at least 20 events."""
    table, _ = netfp_events
    counts = table.groupby("user_id").size()
    users = sorted(counts[counts >= 20].index)[:N_USERS]
    return table[table["user_id"].isin(users)].reset_index(drop=True)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, simulated) -> Path:
    """A LoRA adapter from the DPO recipe (eq. 27) on SIMULATED preferences; a large learning
    rate so the adapter moves the logits well beyond numerical noise."""
    root = tmp_path_factory.mktemp("vllm-dpo")
    save_events(simulated.events, root / "events.parquet")
    run(sys.executable, "recipes/build_preferences.py", "--events", root / "events.parquet",
        "--out", root / "prefs", "--chosen-backend", "heuristic", "--rejected", "mismatched")
    run(BIN / "accelerate", "launch", "--cpu", "recipes/dpo.py",
        "--config", "recipes/smollm2-135m/dpo/config_lora.yaml", "--dataset_name", root / "prefs",
        "--output_dir", root / "dpo", "--max_steps", "2", "--per_device_train_batch_size", "1",
        "--gradient_accumulation_steps", "1", "--learning_rate", "5e-3", "--warmup_steps", "0",
        "--logging_steps", "1")
    return root / "dpo"


@pytest.fixture(scope="module")
def config(model_dir, adapter) -> VLLMConfig:
    return VLLMConfig(model=model_dir, lora_path=str(adapter), dtype="float32",
                      max_model_len=2048, kv_cache_gib=1)


@pytest.fixture(scope="module")
def engine(config):
    """One vLLM engine (LoRA enabled) for the module's offline tests."""
    import vllm

    with pytest.MonkeyPatch.context() as patch:
        for name, value in VLLM_ENV.items():
            patch.setenv(name, value)
        llm = vllm.LLM(**engine_kwargs(config))
    yield llm
    llm.llm_engine.engine_core.shutdown()


def same_rows(ours: ProfileSet, reference: ProfileSet, backend: str) -> None:
    """Same users, prompts, columns and dtypes as the reference; every profile written."""
    a, b = ours.frame, reference.frame
    assert list(a.columns) == list(b.columns) == list(COLUMNS)
    assert (a.dtypes == b.dtypes).all()
    same = ["user_id", "prompt", "template_version", "encoder", "n_events", "n_used",
            "truncated"]
    pd.testing.assert_frame_equal(a[same], b[same])
    assert set(a["backend"]) == {backend}
    assert (a["status"] == "ok").all(), a["error"].tolist()
    assert all(text.strip() for text in a["profile"])
    assert {len(v) for v in a["embedding"]} == {len(b["embedding"][0])}


@pytest.fixture(scope="module")
def reference(events, adapter) -> dict[str, ProfileSet]:
    """The transformers backend with the same adapter, free and grounded."""
    options = {"adapter": str(adapter)}
    return {"free": profile_users(events, "transformers", config=FREE, generation=SHORT,
                                  **options),
            "grounded": profile_users(events, "transformers", config=GROUNDED, **options)}


def test_offline_engine_writes_the_transformers_rows(engine, config, events, reference):
    backend = VLLMBackend(config, SHORT, llm=engine)
    free = profile_users(events, backend, config=FREE)
    same_rows(free, reference["free"], "vllm")
    assert set(free.frame["model"]) == {f"{config.model}+{config.lora_path}"}
    grounded_backend = VLLMBackend(config, llm=engine)
    grounded = profile_users(events, grounded_backend, config=GROUNDED)
    same_rows(grounded, reference["grounded"], "vllm")
    checks = grounded_backend.grounded_stats.as_dict()
    assert checks["users"] == N_USERS and checks["fields_incomplete"] == 0, checks


def test_lora_adapter_is_applied_as_peft_applies_it(engine, config, adapter):
    """Prompt log-probabilities under the adapter: vLLM's equal the PEFT model's (fp32), and
    differ from the base model's by much more than that."""
    import torch
    import vllm
    from vllm.lora.request import LoRARequest

    from uscope.models import load_instruct_lm

    text = "This anonymous user opens Games in the evening and Maps on the way to work."
    model, tokenizer = load_instruct_lm(adapter=str(adapter))
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits[0, :-1].float()
    peft = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0].numpy()

    params = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
    prompt = {"prompt_token_ids": ids[0].tolist()}

    def logprobs(lora) -> np.ndarray:
        (out,) = engine.generate([prompt], params, lora_request=lora, use_tqdm=False)
        return np.array([step[t].logprob for step, t in zip(out.prompt_logprobs[1:],
                                                             ids[0, 1:].tolist())])

    tuned = logprobs(LoRARequest("dpo", 1, str(adapter)))
    base = logprobs(None)
    gap = np.abs(tuned - peft).max()
    assert gap < 0.02, gap
    assert np.abs(tuned - base).max() > 10 * gap


def test_synthesis_decoder_keeps_to_the_offered_pairs(engine, model_dir):
    from uscope.synth.pairs import Pair
    from uscope.synth.serialise import completion_text
    from uscope.synth.vllm_structured import VLLMDecoder, VLLMSynthConfig

    options = (Pair("Games", "1", "Residence", "3"),
               Pair("Health&Fitness", "68", "Transportation hub & Restaurant", "35"))
    decoder = VLLMDecoder(VLLMSynthConfig(model=model_dir), llm=engine)
    texts = decoder.choose(["Profile: plays games.\nMon 08h |"] * 6, options)
    assert len(texts) == 6 and set(texts) <= {completion_text(p) for p in options}


@pytest.fixture(scope="module")
def server(model_dir, adapter, tmp_path_factory):
    """``vllm serve`` on localhost with the DPO adapter as a served LoRA module."""
    serve = VLLMServer(model_dir, served_name=SERVED_NAME, env=ENV,
                       log=tmp_path_factory.mktemp("vllm-serve") / "serve.log",
                       args=["--dtype", "float32", "--max-model-len", "2048", "--enable-lora",
                             "--max-lora-rank", "16", "--lora-modules", f"dpo={adapter}"])
    with serve as base_url:
        assert {SERVED_NAME, "dpo"} <= serve.models
        yield base_url
    assert serve.process.poll() is not None  # stopped


def test_vllm_serve_behind_the_openai_backend_writes_the_same_rows(server, events, reference,
                                                                   tmp_path):
    """``uscope profile --backend openai`` against the real server, grounded (the
    ``structured_outputs`` extension over HTTP) and free, with the served LoRA adapter."""
    events_file = tmp_path / "events.parquet"
    save_events(events, events_file)
    for mode, extra in (("grounded", []), ("free", ["--template", "profile_v2",
                                                    "--max-new-tokens", "48",
                                                    "--no-complete-sentences"])):
        out = tmp_path / f"{mode}.parquet"
        done = run(BIN / "uscope", "profile", events_file, "--out", out, "--backend", "openai",
                   "--base-url", server, "--model", "dpo", "--batch-size", str(N_USERS),
                   "--timeout", "300",  # a shared 2-core CPU: 4 grounded prompts in one batch
                   "--no-progress", *extra)
        served = ProfileSet.load(out)
        same_rows(served, reference[mode], "openai")
        assert set(served.frame["model"]) == {"dpo"}
        if mode == "grounded":
            assert "'fields_incomplete': 0" in done.stdout, done.stdout


def profile_on_ray(events, tmp_path, model_dir, adapter, stage: str, *extra) -> ProfileSet:
    """``uscope profile --engine ray --backend vllm`` with the adapter, one worker, two
    buckets, at ``--llm-stage stage``."""
    events_file = tmp_path / "events.parquet"
    save_events(events, events_file)
    out = tmp_path / f"{stage}.parquet"
    run(BIN / "uscope", "profile", events_file, "--out", out, "--backend", "vllm",
        "--model", model_dir, "--lora", adapter, "--kv-cache-gib", "1", "--engine", "ray",
        "--llm-stage", stage, "--workers", "1", "--chunk-size", str(N_USERS // 2),
        "--no-progress", *extra)
    assert not out.with_name(out.name + ".parts").exists()
    return ProfileSet.load(out)


def test_ray_engine_gives_each_profiler_actor_a_vllm_engine(model_dir, adapter, events,
                                                             reference, tmp_path):
    """``--engine ray --backend vllm --llm-stage actor`` on a local Ray cluster: the profiler
    actor holds a vLLM engine (the CPU build here; on a cluster with GPUs each actor reserves
    ``--tensor-parallel`` of them) and profiles both buckets, writing the transformers
    backend's rows."""
    on_ray = profile_on_ray(events, tmp_path, model_dir, adapter, "actor", "--template",
                            "profile_v2", "--max-new-tokens", "48", "--no-complete-sentences")
    same_rows(on_ray, reference["free"], "vllm")
    assert set(on_ray.frame["model"]) == {f"{model_dir}+{adapter}"}


def test_ray_data_llm_processor_answers_grounded_profiles_in_rounds(model_dir, adapter, events,
                                                                  reference, tmp_path):
    """``--engine ray --backend vllm --llm-stage ray-data-llm`` (the default on GPUs): CPU actors
    replay each bucket from answers on disk and a ``ray.data.llm`` vLLM processor (the CPU
    build, one engine, the DPO LoRA adapter as the rows' model) answers each round's asks:
    the regex decodes, then any sampled re-decode. The transformers backend's rows come out,
    and the answer files go with the parts folder."""
    on_ray = profile_on_ray(events, tmp_path, model_dir, adapter, "ray-data-llm",
                            "--batch-size", str(N_USERS))
    same_rows(on_ray, reference["grounded"], "vllm")
    assert set(on_ray.frame["model"]) == {f"{model_dir}+{adapter}"}
