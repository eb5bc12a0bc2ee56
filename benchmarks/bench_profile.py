"""U-SCOPE profiling (eq. 21-24): speed, peak memory, faithfulness and embedding lift.

Speed: users/second end to end (features -> prompt -> backend -> MiniLM embedding) for the
heuristic backend and the bundled SmolLM2-135M-Instruct, at batch sizes 1, 8 and 32. Each
backend runs in its own worker process, so its peak RSS is its own.
Quality: faithfulness (the profile names the user's top category - the app category, or the
place category for a location-only user - and, where the data has places, their main place)
and neighbour lift (embedding neighbours share more category usage than random pairs).
Location-only users (no app use) are counted and, in data that mixes them with app users,
also scored on their own. When the chosen data has no places, a SIMULATED population is
scored beside it for places.

Data: ``--dataset NAME`` (registry ``uscope.data.datasets``, default netfp) or ``--events
PATH`` (your own file): the options every benchmark shares (``benchmarks/_data.py``). Data
with neither apps nor place categories stops with one line naming the missing field. The
default dataset writes the ``profile`` section of BENCHMARKS.md, another one its own
(``profile-foursquare-nyc``).

Run: python benchmarks/bench_profile.py [--dataset foursquare-nyc] [--quick]
     [--llm-users 32] [--max-new-tokens 40] [--threads 1]
``--quick``: the heuristic writer only, at most 64 users, one batch size, nothing written to
BENCHMARKS.md (a smoke run well under a minute).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import (
    EXIT_LACKS_FIELD,
    add_dataset_args,
    fail,
    kind_needs,
    load_for_benchmark,
    quick_banner,
    report,
    require,
)
from _report import markdown_table

BATCH_SIZES = (1, 8, 32)
QUICK_USERS = 64
LABELS = {"heuristic": "heuristic + MiniLM", "smollm2": "SmolLM2-135M + MiniLM"}


def _sample(users: list[str], n: int, seed: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return sorted(rng.choice(users, size=min(n, len(users)), replace=False).tolist())


def load(args: argparse.Namespace):
    """The chosen data; stops with one line when it lacks what the quality measures need:
    categories (apps, or place categories: ``kind_needs(("intent",), ...)``)."""
    data = load_for_benchmark(args, (), "bench_profile", quick_users=QUICK_USERS,
                              options={"simulated": {"n_users": args.sim_users, "days": 7}})
    require(data, kind_needs(("intent",), data.spec.fields),
            "bench_profile (faithfulness and lift need app or place categories)")
    return data


def places_control(args: argparse.Namespace):
    """The SIMULATED population scored for places when the chosen data has none."""
    from uscope.data.datasets import load_dataset

    return load_dataset("simulated", n_users=args.sim_users, days=7, seed=0)


def _quality(ps, features, subset: str) -> dict:
    """Faithfulness and neighbour lift of one ProfileSet (rows in the order of features)."""
    import numpy as np

    from uscope.profile.quality import category_usage, faithfulness, neighbour_lift

    ok = (ps.frame["status"] == "ok").to_numpy()
    texts = [t if isinstance(t, str) else "" for t in ps.frame["profile"]]
    faith = faithfulness(texts, features)
    row = {"subset": subset, "n": len(texts), "failed": int((~ok).sum()),
           "location_only": sum(not f.uses_apps for f in features),
           "top1_cat": faith.top1_category, "top3_cat": faith.top3_categories,
           "place_users": faith.n_place_users, "top1_place": faith.top1_place}
    usage, _ = category_usage(features)
    scored = ok & (usage.sum(axis=1) > 0)  # users with a category (GPS-only ones have none)
    k = 5 if scored.sum() > 50 else 3
    row["lift_users"] = int(scored.sum())
    if scored.sum() <= k:
        return {**row, "k": k, "lift": None}
    embeddings = ps.embeddings()[scored]  # (n, D)
    lift = neighbour_lift(embeddings, usage[scored], k=k)
    noise = np.random.default_rng(0).normal(size=(int(scored.sum()), ps.dim))
    control = neighbour_lift(noise, usage[scored], k=k)
    return {**row, "k": k, "nn_sim": lift.neighbour_similarity,
            "random_sim": lift.random_similarity, "lift": lift.lift,
            "control_lift": control.lift}


def _subsets(ps, features):
    """("all", ...) and, when app and location-only users are mixed, ("location-only", ...)."""
    from uscope.profile import ProfileSet

    yield "all", ps, features
    alone = [i for i, f in enumerate(features) if not f.uses_apps]
    if 0 < len(alone) < len(features):
        frame = ps.frame.iloc[alone].reset_index(drop=True)
        yield "location-only", ProfileSet(frame), [features[i] for i in alone]


def _speed(events, backend, encoder, users: list[str], args, llm: bool) -> tuple[list, dict]:
    from uscope.profile import ProfileConfig, profile_users

    speed, sets = [], {}
    for bs in (8,) if args.quick else BATCH_SIZES:
        chosen = users[:args.llm_users_bs1] if llm and bs == 1 else users
        times = []
        for _ in range(1 if llm or args.quick else args.repeats):
            t0 = time.perf_counter()
            sets[bs] = profile_users(events, backend, encoder=encoder, users=chosen,
                                     config=ProfileConfig(batch_size=bs))
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times)
        speed.append({"batch": bs, "users": len(chosen), "seconds": seconds,
                      "users_per_s": len(chosen) / seconds})
    return speed, sets


def worker(backend_name: str, args: argparse.Namespace) -> dict:
    """Time one backend on the chosen data, then score its profiles there (and on the
    simulated places control when the data has no places); a JSON-able dict."""
    import torch

    from uscope.data.schema import has_places
    from uscope.profile import GenerationConfig, ProfileConfig, ProfileEncoder, profile_users
    from uscope.profile.pipeline import event_users
    from uscope.profile.population import iter_features
    from uscope.profile.prompting import DEFAULT_TEMPLATE

    torch.set_num_threads(args.threads)
    data = load(args)
    start = time.perf_counter()
    encoder = ProfileEncoder()
    llm = backend_name != "heuristic"
    if llm:
        from uscope.profile.backends.hf import TransformersBackend

        backend = TransformersBackend(generation=GenerationConfig(
            max_new_tokens=args.max_new_tokens))
    else:
        backend = "heuristic"
    result = {"backend": backend_name, "load_s": time.perf_counter() - start,
              "speed_data": data.label, "quality": [], "examples": {}}
    users = event_users(data.events)
    speed_users = _sample(users, args.llm_users if llm else args.heuristic_users, seed=0)
    result["speed"], sets = _speed(data.events, backend, encoder, speed_users, args, llm)
    sources = [data] if has_places(data.events) else [data, places_control(args)]
    for position, source in enumerate(sources):
        events = source.events
        everyone = event_users(events)
        chosen = _sample(everyone, args.llm_users, seed=position) if llm else everyone
        places = has_places(events)
        templates = ((DEFAULT_TEMPLATE, "profile_v1") if llm and places and not args.quick
                     else (DEFAULT_TEMPLATE,))
        features = list(iter_features(events, chosen))
        for template in templates:
            reuse = (position == 0 and template == DEFAULT_TEMPLATE and 8 in sets
                     and sets[8].user_ids == chosen)
            ps = sets[8] if reuse else profile_users(
                events, backend, encoder=encoder, users=chosen,
                config=ProfileConfig(batch_size=8 if llm else 64, template=template))
            for subset, part, feats in _subsets(ps, features):
                result["quality"].append({"data": source.label, "template": template,
                                          "places": places, **_quality(part, feats, subset)})
            result["examples"].setdefault(source.label, ps.frame["profile"].head(1).tolist())
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _run_worker(name: str, argv: list[str]) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(_args(argv).threads)}
    proc = subprocess.run([sys.executable, __file__, "--worker", name, *argv], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode in (2, EXIT_LACKS_FIELD):  # the worker's one line, passed on
        lines = proc.stderr.strip().splitlines() or [f"worker {name} failed"]
        fail(lines[-1].removeprefix("error: "), proc.returncode)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_args(parser, default="netfp")
    parser.add_argument("--llm-users", type=int, default=32)
    parser.add_argument("--llm-users-bs1", type=int, default=8)
    parser.add_argument("--heuristic-users", type=int, default=128)
    parser.add_argument("--sim-users", type=int, default=140)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=["heuristic", "smollm2"])
    args = parser.parse_args(argv)
    if args.quick:
        args.heuristic_users = min(args.heuristic_users, 32)
        args.sim_users = min(args.sim_users, 40)
    return args


def _pct(x) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.0f}%"


def _lift(q: dict) -> str:
    if q["lift"] is None:
        return f"n/a ({q['lift_users']} users with a category, k={q['k']})"
    return (f"{q['lift']:.2f} ({q['nn_sim']:.2f}/{q['random_sim']:.2f}, k={q['k']}, "
            f"{q['lift_users']} users)")


def tables(results: list[dict]) -> tuple[str, str]:
    speed_rows, quality_rows = [], []
    for r in results:
        for s in r["speed"]:
            speed_rows.append({
                "backend": LABELS[r["backend"]], "data": r.get("speed_data", ""),
                "batch size": s["batch"], "users": s["users"], "seconds": f"{s['seconds']:.1f}",
                "users/s": f"{s['users_per_s']:.2f}", "peak RSS MiB": f"{r['peak_rss_mib']:.0f}",
                "model load s": f"{r['load_s']:.1f}"})
        for q in r["quality"]:
            quality_rows.append({
                "backend": LABELS[r["backend"]], "data": q["data"], "users": q["subset"],
                "template": "n/a (no prompt)" if r["backend"] == "heuristic" else q["template"],
                "n": q["n"], "location-only": q["location_only"], "failed": q["failed"],
                "top-1 category named": _pct(q["top1_cat"]),
                "top-3 categories named": _pct(q["top3_cat"]),
                "top-1 place named": _pct(q["top1_place"]) if q["places"]
                else "n/a (no field 'location_id')",
                "lift (k-NN usage cos / random)": _lift(q),
                "random-embedding control": "n/a" if q["lift"] is None
                else f"{q['control_lift']:.2f}"})
    speed = markdown_table(speed_rows) if speed_rows else "(no speed run)"
    quality = markdown_table(quality_rows) if quality_rows else "(no quality run)"
    return speed, quality


def body(results: list[dict], args: argparse.Namespace, load_avg: tuple[float, ...]) -> str:
    speed, quality = tables(results)
    examples = "\n".join(f"- {LABELS[r['backend']]}, {data}: \"{texts[0]}\""
                         for r in results for data, texts in r["examples"].items() if texts)
    quick = (f"{quick_banner(args)}The heuristic writer only, at most {QUICK_USERS} users, one "
             "batch size.\n" if args.quick else "")
    return f"""
{quick}Speed end to end (features, prompt, backend, MiniLM embedding; model loading excluded and
listed separately) on users sampled from {results[0]["speed_data"]}; torch threads =
{args.threads}; SmolLM2 greedy, max_new_tokens = {args.max_new_tokens}, default template. The
heuristic rows are medians of {args.repeats} runs, the SmolLM2 rows single runs (batch size 1
on the first {args.llm_users_bs1} of the {args.llm_users} sampled users, to keep the run
short). The heuristic backend itself costs microseconds; its rows measure feature extraction
and the MiniLM encoder, which embeds a whole chunk at once whatever the batch size, so
differences between its rows are CPU contention, not batching. Peak RSS is the worker
process's maximum (its models loaded, every step run). The 2 CPU cores were shared with other
engineers' jobs (1-min load average at start/end: {load_avg[0]:.1f}/{load_avg[1]:.1f}), so
absolute speeds are noisy.

{speed}

Quality (real data unless labelled SIMULATED). Faithfulness: share of users whose profile
names (exact, case-insensitive substring) their main category, mean share of their top-3
categories named, and share naming their main place. The categories are the user's intents:
app categories for users with app use, place categories for location-only users (no app use,
e.g. Foursquare check-ins), whose main place is their most visited venue; "location-only" rows
score those users alone where the data mixes both kinds. When the data has no places, the
SIMULATED population is scored for places beside it. netfp names its categories in Chinese;
a profile must copy them to count. Lift: mean cosine similarity of category usage between each
user and its k nearest neighbours by profile embedding, divided by the same for random pairs
(1 = chance), over the users that have a category; the control uses random Gaussian
embeddings. The heuristic writer states the features verbatim, so its faithfulness is 100% by
construction: it is the reference, not a competitor. SmolLM2 profiles {args.llm_users}
sampled users per data set, the heuristic writer every user.

{quality}

Example profiles (the first profiled user of each data set):
{examples}
"""


def main() -> None:
    argv = sys.argv[1:]
    args = _args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    data = load(args)  # stops here, in one line, when the data lacks a needed field
    load_start = os.getloadavg()[0]
    backends = ("heuristic",) if args.quick else ("heuristic", "smollm2")
    results = [_run_worker(name, argv) for name in backends]
    report(args, data, "profile", "U-SCOPE profiling: speed, memory, faithfulness, embedding "
           "lift", body(results, args, (load_start, os.getloadavg()[0])))


if __name__ == "__main__":
    main()
