"""Inputs and outputs of the data-building recipes (``generate_cot.py``, ``build_preferences.py``).

Events come from a file or folder (an event table saved by ``uscope read``/``uscope simulate``,
a Tsinghua folder, the netfp CSV, a generic CSV) or from the simulator (SIMULATED data; the
manifest says so). Users are split into training and held-out users by a stable hash
(``tasks.split_users``); only training users' data reaches a dataset, and the manifest lists
both groups so an evaluation can use exactly the held-out ones.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from uscope.data.schema import validate_events


def load_events(source: str | os.PathLike | None, *, simulate_users: int = 0, days: int = 7,
                seed: int = 0) -> tuple[pd.DataFrame, str]:
    """(events, description); ``source`` None means a simulated population."""
    from uscope import data

    if source is None:
        if simulate_users < 2:
            raise ValueError("give --events, or --simulate-users N (N >= 2) for SIMULATED data")
        population = data.simulate(n_users=simulate_users, days=days, seed=seed)
        return population.events, (f"SIMULATED population ({simulate_users} users x {days} "
                                    f"days, seed {seed})")
    path = Path(source)
    if path.is_dir():
        return data.read_tsinghua(path).events, f"Tsinghua-format folder {path}"
    if path.suffix in (".parquet", ".pq"):
        return validate_events(data.load_events(path)), f"event table {path}"
    if path.name.startswith("data0"):
        return data.read_netfp(path, language="en")[0], f"netfp (real) {path}"
    return data.read_events(path)[0], f"event file {path}"


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The data and split options both data recipes take, with the same defaults."""
    group = parser.add_argument_group("data and split")
    group.add_argument("--events", default=None,
                       help="event table (.parquet), Tsinghua folder, netfp or generic CSV")
    group.add_argument("--simulate-users", type=int, default=0,
                       help="without --events: simulate this many users (SIMULATED data)")
    group.add_argument("--simulate-days", type=int, default=7)
    group.add_argument("--simulate-seed", type=int, default=0)
    group.add_argument("--cutoff", default="0.3",
                       help="novelty cut-off: a fraction of the time span or a timestamp")
    group.add_argument("--heldout-fraction", type=float, default=0.3,
                       help="share of users held out (never in a dataset)")
    group.add_argument("--split-seed", type=int, default=0)
    group.add_argument("--max-users", type=int, default=None,
                       help="use at most this many training users (first by id)")


def parse_cutoff(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def write_manifest(out: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """``manifest.json`` beside the dataset, written atomically."""
    path = Path(out) / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def add_teacher_arguments(parser: argparse.ArgumentParser, *, max_new_tokens: int = 96,
                          backend_flag: str = "--teacher-backend",
                          backend_help: str = "transformers | vllm | openai (any "
                                              "OpenAI-compatible endpoint)",
                          prefill_option: bool = False) -> None:
    """Which model answers: any profile backend (``uscope.profile.backends``)."""
    group = parser.add_argument_group("teacher")
    group.add_argument(backend_flag, dest="teacher_backend", default="transformers",
                       metavar="BACKEND", help=backend_help)
    group.add_argument("--teacher-model", default=None,
                       help="path or hub id (transformers default: bundled SmolLM2-135M); "
                            "the served model name for openai")
    group.add_argument("--teacher-adapter", default=None, help="PEFT adapter on the teacher")
    if prefill_option:
        group.add_argument("--teacher-format", default="prefill", choices=("prefill", "free"),
                           help="transformers: prefill the reply labels and draw the answer "
                                "from the candidates (small local models need it, "
                                "uscope.tuning.teacher) or let the model write freely")
    group.add_argument("--base-url", default=None, help="openai: endpoint base URL")
    group.add_argument("--timeout", type=float, default=120.0, help="openai: seconds per call")
    group.add_argument("--concurrency", type=int, default=8, help="openai: calls in flight")
    group.add_argument("--tensor-parallel", type=int, default=1, help="vllm: GPUs per model")
    group.add_argument("--temperature", type=float, default=0.0)
    group.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    group.add_argument("--batch-size", type=int, default=8, help="requests per teacher call")
    group.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def make_teacher(args: argparse.Namespace, *, seed: int = 0, complete_sentences: bool = True):
    """The backend named by ``add_teacher_arguments``' options; ``complete_sentences`` False
    for answers that are labelled lines, not prose (chain-of-thought traces)."""
    from uscope.profile.backends import GenerationConfig, make_backend

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    options: dict[str, Any] = {}
    if args.teacher_backend == "openai":
        options = {"timeout_s": args.timeout, "concurrency": args.concurrency}
        if args.base_url:
            options["base_url"] = args.base_url
    elif args.teacher_backend == "vllm":
        options = {"tensor_parallel_size": args.tensor_parallel, "lora_path": args.teacher_adapter}
    elif args.teacher_backend == "transformers" and args.teacher_adapter:
        options = {"adapter": args.teacher_adapter}
    elif args.teacher_adapter:
        raise ValueError(f"--teacher-adapter does not apply to {args.teacher_backend!r}")
    generation = GenerationConfig(max_new_tokens=args.max_new_tokens,
                                  temperature=args.temperature, seed=seed,
                                  complete_sentences=complete_sentences)
    if args.teacher_backend == "transformers" and getattr(args, "teacher_format",
                                                          "free") == "prefill":
        from uscope.tuning.teacher import PrefilledTeacher

        return PrefilledTeacher(args.teacher_model, generation, **options)
    return make_backend(args.teacher_backend, args.teacher_model, generation, **options)
