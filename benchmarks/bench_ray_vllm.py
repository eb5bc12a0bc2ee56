"""The batch job with vLLM three ways, timed end to end as an operator runs it: one process
(``uscope profile --backend vllm``), ``--engine ray --llm-stage actor`` (an engine in the
profiler actor) and ``--engine ray`` through a ``ray.data.llm`` processor (rounds of replay
and answers). Same real netfp users, grounded and free, one Ray worker; every job starts its
own engines and cluster, so load times count.

Run in the venv ``make vllm-env`` builds:
    .venv-vllm/bin/python benchmarks/bench_ray_vllm.py --users 128
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import markdown_table, write_section
from bench_vllm import MODES, netfp_users

SECTION = "profile-ray-vllm"
ROUTES = {
    "one process (--engine local)": [],
    "Ray, engine in the actor (--llm-stage actor)": ["--engine", "ray", "--llm-stage", "actor"],
    "Ray, ray.data.llm processor (--llm-stage ray-data-llm)": ["--engine", "ray", "--llm-stage",
                                                               "ray-data-llm"],
}
ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RAY_USAGE_STATS_ENABLED": "0",
       "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "PYTHONWARNINGS": "ignore::FutureWarning"}


def run_job(events: Path, out: Path, model: str, mode: str, route: list[str],
            users: int) -> float:
    """Seconds of one ``uscope profile`` job, process start to exit; checks every user ok."""
    import pandas as pd

    template, max_new_tokens = MODES[mode]
    command = [str(Path(sys.executable).with_name("uscope")), "profile", str(events),
               "--out", str(out), "--backend", "vllm", "--model", model, "--kv-cache-gib", "2",
               "--template", template, "--max-new-tokens", str(max_new_tokens),
               "--batch-size", str(users), "--chunk-size", str(users), "--no-progress", *route]
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **ENV}, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    rows = pd.read_parquet(out, columns=["status"])
    if len(rows) != users or (rows["status"] != "ok").any():
        raise SystemExit(f"{out}: {len(rows)} rows, {(rows['status'] != 'ok').sum()} failed")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=128)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from uscope.data import save_events
    from uscope.models import smollm2_hf_dir

    model = str(smollm2_hf_dir())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.parquet"
        save_events(netfp_users(args.users), events)
        for mode in MODES:
            local = None
            for name, route in ROUTES.items():
                out = Path(tmp) / f"{mode}-{len(rows)}.parquet"
                seconds = run_job(events, out, model, mode, route, args.users)
                local = local or seconds
                rows.append({"mode": mode, "route": name, "job seconds": f"{seconds:.0f}",
                             "users/s": f"{args.users / seconds:.2f}",
                             "vs one process": f"{local / seconds:.2f}x"})
                print(rows[-1], flush=True)
    import vllm

    body = (f"Real netfp: the first {args.users} devices with at least 20 events, one job per "
            f"row, one after the other in one run; SmolLM2-135M-Instruct (bf16), vLLM "
            f"{vllm.__version__} (CPU build), one Ray worker on a local 2-CPU cluster, the "
            "whole block in one call (`--batch-size` and `--chunk-size` = users); each job "
            "timed from process start to exit, so engine loads (one per round for "
            "ray.data.llm), Ray start-up and the MiniLM embedding count.\n\n"
            + markdown_table(rows) + "\n")
    print(body)
    if not args.no_write:
        write_section(SECTION, "The batch job with vLLM: one process, Ray actors, ray.data.llm",
                      body)


if __name__ == "__main__":
    main()
