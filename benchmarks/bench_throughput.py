"""Batch profiling throughput on this CPU: features, encoder, end to end and the Ray engine
(issue 21's bars), side by side in one run. Peak memory against the population size is
``bench_memory.py``'s.

1. Real netfp (every device), one torch thread, medians of ``--repeats`` rounds in which every
   step runs once in turn:
   - features: the one-user reference (``user_features`` on each user's slice) against the
     vectorised pass (``population_features``);
   - a plain fp32 MiniLM encode of the heuristic profile texts, and the bf16 one (min cosine to
     fp32 and neighbour lift of both);
   - end to end (``profile_users``, heuristic writer + MiniLM) with each encoder.
2. The Ray engine against the local job on the same parquet (a SIMULATED population of
   ``--ray-users``): the local job on one and two threads, Ray with one and two profiler actors
   on a local 2-CPU cluster started before the clock; identical rows checked.

Run: python benchmarks/bench_throughput.py [--repeats 5] [--ray-users 10000] [--quick]
``--quick``: 150 netfp users, one repeat, 300 Ray users; nothing written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import load_named
from _measure import interleaved, simulated_parquet
from _report import markdown_table, publish

SECTION = "profile-throughput"
SAME = ["user_id", "status", "prompt", "profile", "n_events", "n_used", "truncated", "encoder"]


def single_process(events, repeats: int) -> tuple[list[dict], dict]:
    """Part 1: features, encoders and end to end on one thread."""
    import numpy as np

    from uscope.profile import ProfileEncoder, profile_users
    from uscope.profile.backends import heuristic_profile
    from uscope.profile.features import user_features, user_slices
    from uscope.profile.population import population_features
    from uscope.profile.quality import category_usage, neighbour_lift

    slices = user_slices(events)
    users = sorted(slices)
    n = len(users)
    fp32, bf16 = ProfileEncoder(precision="fp32"), ProfileEncoder(precision="bf16")
    texts = [heuristic_profile(f) for f in population_features(events, users)]
    t, out = interleaved({
        "ref": lambda: [user_features(u, events.iloc[slices[u]]) for u in users],
        "vec": lambda: population_features(events, users),
        "fp32": lambda: fp32.encode(texts), "bf16": lambda: bf16.encode(texts),
        "e2e32": lambda: profile_users(events, "heuristic", encoder=fp32),
        "e2e16": lambda: profile_users(events, "heuristic", encoder=bf16)}, repeats)
    t_ref, t_vec, t_fp32, t_bf16, t_e2e32, t_e2e16 = (
        t[k] for k in ("ref", "vec", "fp32", "bf16", "e2e32", "e2e16"))
    features, e_fp32, e_bf16 = out["vec"], out["fp32"], out["bf16"]
    usage, _ = category_usage(features)
    cosine = np.sum(e_fp32 * e_bf16, axis=1)
    lift32, lift16 = neighbour_lift(e_fp32, usage).lift, neighbour_lift(e_bf16, usage).lift
    rows = [
        {"step": "features: one-user reference (pandas slice per user)", "per s": n / t_ref},
        {"step": "features: vectorised pass (population_features)", "per s": n / t_vec},
        {"step": "MiniLM fp32 encode of the profile texts (anchor)", "per s": n / t_fp32},
        {"step": "MiniLM bf16 encode of the profile texts", "per s": n / t_bf16},
        {"step": "end to end, heuristic + MiniLM fp32", "per s": n / t_e2e32},
        {"step": "end to end, heuristic + MiniLM bf16 (default with AMX)", "per s": n / t_e2e16},
    ]
    for row in rows:
        row["per s"] = f"{row['per s']:,.0f}"
    facts = {"n": n, "rows": len(events), "e2e_ratio": t_fp32 / t_e2e16,
             "bf16_ratio": t_fp32 / t_bf16, "outside_encode": 1 - t_bf16 / t_e2e16,
             "features_ratio": t_ref / t_vec, "features_rate": n / t_vec,
             "min_cos": float(cosine.min()), "lift32": lift32, "lift16": lift16,
             "unique_texts": len(set(texts))}
    return rows, facts


def ray_engine(path: Path, work: Path) -> tuple[list[dict], bool]:
    """Part 2: local job vs Ray engine on the same parquet (2 local CPUs)."""
    import ray
    import torch

    from uscope.profile import JobConfig, ProfileEncoder, ProfileSet, make_backend, run_profile_job
    from uscope.profile.ray_engine import WorkerSpec, run_ray_job

    config = JobConfig(chunk_size=128)
    encoder = ProfileEncoder()
    rows, outputs = [], {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out = work / f"local{threads}.parquet"
        start = time.perf_counter()
        summary = run_profile_job(path, out, make_backend("heuristic"), encoder, config)
        rows.append({"engine": f"local job, {threads} torch thread(s)",
                     "users/s": summary.n_users / (time.perf_counter() - start)})
        outputs[out] = summary.n_users
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for workers in (1, 2):
            out = work / f"ray{workers}.parquet"
            start = time.perf_counter()
            summary = run_ray_job(path, out, WorkerSpec(), config, workers=workers)
            rows.append({"engine": f"ray, {workers} actor(s) x 1 thread, 2-CPU local cluster",
                         "users/s": summary.n_users / (time.perf_counter() - start)})
            outputs[out] = summary.n_users
    finally:
        ray.shutdown()
    base = rows[0]["users/s"]
    for row in rows:
        row["vs local 1 thread"] = f"{row['users/s'] / base:.2f}x"
        row["users/s"] = f"{row['users/s']:.0f}"
    frames = [ProfileSet.load(p).frame[SAME] for p in outputs]
    same = all(frames[0].equals(f) for f in frames[1:])
    return rows, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ray-users", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import torch

    from uscope.data.schema import validate_events
    from uscope.profile.encoder import default_precision

    torch.set_num_threads(1)
    if args.quick:
        args.repeats, args.ray_users = 1, 300
    events = validate_events(load_named("netfp", (), "bench_throughput",
                                        max_users=150 if args.quick else None).events)
    steps, facts = single_process(events, args.repeats)
    print(markdown_table(steps), facts, flush=True)
    with tempfile.TemporaryDirectory(prefix="uscope-throughput-") as tmp:
        engines, same = ray_engine(simulated_parquet(args.ray_users, Path(tmp))[0], Path(tmp))
        print(markdown_table(engines), "same rows:", same, flush=True)
    body = (
        f"Real netfp: {facts['n']:,} devices, {facts['rows']:,} events; one torch thread; "
        f"medians of {args.repeats} rounds in one process, each round running every step once "
        "in turn (side by side).\n\n"
        + markdown_table(steps) + "\n\n"
        "- End to end (bf16, the default on CPUs with AMX) runs at "
        f"**{facts['e2e_ratio']:.2f}x** the plain fp32 "
        f"encode of as many profile texts (bar: 3x). The bf16 encode alone runs at "
        f"{facts['bf16_ratio']:.2f}x, the ceiling of that ratio; validation, features, prompt "
        f"rendering and the rows take the other {facts['outside_encode']:.0%} of the end-to-end "
        f"time.\n"
        f"- Features: {facts['features_rate']:,.0f} users/s vectorised, "
        f"{facts['features_ratio']:.0f}x the one-user reference (bar: 3,000 users/s); both give "
        f"the same features (`tests/test_profile_population.py`).\n"
        f"- bf16 embeddings: min cosine to fp32 {facts['min_cos']:.5f} (bar: 0.99); neighbour "
        f"lift (k=5) {facts['lift16']:.3f} with bf16, {facts['lift32']:.3f} with fp32. "
        f"{facts['unique_texts']:,} distinct texts of {facts['n']:,} (identical ones are "
        f"embedded once).\n\n"
        "Ray engine against the local job on the same parquet: **SIMULATED**, "
        f"{args.ray_users:,} users of one day; heuristic + MiniLM in {default_precision()} (this "
        "CPU's default), "
        "128 users per chunk or bucket; the Ray cluster (2 CPUs) is started before the clock, "
        "each run includes reading, grouping and its actors loading MiniLM. The 2 cores are "
        "shared by the driver, the read and shuffle tasks and the actors.\n\n"
        + markdown_table(engines) + "\n\n"
        f"Identical rows (user, status, prompt, profile, counts, encoder) from all four runs: "
        f"{'yes' if same else 'NO'}.\n")
    publish(SECTION, "U-SCOPE profiling throughput: features, encoder, Ray", body,
            write=not args.quick)


if __name__ == "__main__":
    main()
