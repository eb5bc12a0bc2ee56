"""Grounded vs free profiles from the bundled SmolLM2-135M (issue 22), side by side in one run.

On the same sampled users of each real data set (netfp with English names: the bundled models
read English; Foursquare NYC) three writers run: the heuristic writer (faithful by
construction, no inference), SmolLM2 free-form (``profile_v2``) and SmolLM2 grounded
(``grounded_v1``: per-user constrained fields, then free text checked sentence by sentence).
Each row: named-fact recall (top-1 / top-3 categories, top place), the contradiction rate
(share of profiles with a claim the features refute: ``uscope.profile.faithfulness``), the
consistency c(y | H_u), the embedding lift (``uscope.profile.quality.neighbour_lift``) and the
seconds per user of the writer (features, generation and MiniLM included).

Persona: on the SIMULATED population (archetype known) the grounded persona sentence, the free
profile and the heuristic text are each assigned the nearest archetype by MiniLM cosine to the
archetype's name ("a night gamer"); accuracy against chance (1 / archetypes).

Profiles are cached per (data, writer, users) under ``runs/bench_grounded`` so a killed run
resumes. Run: python benchmarks/bench_grounded.py [--users 64] [--sim-users 70] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section

CACHE = Path(__file__).resolve().parents[1] / "runs" / "bench_grounded"
WRITERS = {"heuristic": ("heuristic", None), "SmolLM2 free": ("transformers", "profile_v2"),
           "SmolLM2 grounded": ("transformers", "grounded_v1")}
DATASETS = {"netfp": {"language": "en"}, "foursquare-nyc": {}}


def _args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=64, help="sampled users per data set")
    parser.add_argument("--sim-users", type=int, default=70, help="simulated users (persona)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=160,
                        help="both SmolLM2 writers' budget (grounded: fields and free text)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 users a data set; never writes")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.sim_users, args.max_new_tokens = 2, 4, 96
    return args


def _sample(users, n, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    return sorted(rng.choice(sorted(users), size=min(n, len(users)), replace=False).tolist())


def _profile(key, events, users, writer, lm_backend, encoder, args):
    """(ProfileSet, seconds) of one writer, from the cache when this exact run is there."""
    from uscope.profile import ProfileConfig, ProfileSet, profile_users
    from uscope.profile.prompting import load_template

    version = load_template(WRITERS[writer][1] or "profile_v2").version.replace("@", "-")
    path = CACHE / f"{key}-{version}-t{args.max_new_tokens}.parquet"
    if path.exists() and not args.quick:
        return ProfileSet.load(path), json.loads(path.with_suffix(".json").read_text())
    kind, template = WRITERS[writer]
    backend = lm_backend if kind == "transformers" else "heuristic"
    config = ProfileConfig(template=template or "profile_v2", batch_size=args.batch_size)
    if kind == "transformers" and not args.quick:  # warm-up, not timed: kernels, caches
        profile_users(events, backend, encoder=encoder, users=users[:2], config=config)
    stats = dict(lm_backend.grounded_stats.counts) if kind == "transformers" else {}
    start = time.perf_counter()
    ps = profile_users(events, backend, encoder=encoder, users=users, config=config)
    meta = {"seconds": time.perf_counter() - start}
    if template == "grounded_v1":
        after = lm_backend.grounded_stats.counts
        meta["checks"] = {k: after[k] - stats.get(k, 0) for k in after}
    if not args.quick:
        CACHE.mkdir(parents=True, exist_ok=True)
        ps.save(path)
        path.with_suffix(".json").write_text(json.dumps(meta))
    return ps, meta


def _lift(ps, features):

    from uscope.profile.quality import category_usage, neighbour_lift

    usage, _ = category_usage(features)
    ok = (ps.frame["status"] == "ok").to_numpy() & (usage.sum(axis=1) > 0)
    k = 5 if ok.sum() > 50 else 3
    if ok.sum() <= k:
        return None
    return neighbour_lift(ps.embeddings()[ok], usage[ok], k=k).lift


def quality_rows(label, events, users, lm_backend, encoder, args):
    from uscope.profile.faithfulness import measure, vocabulary
    from uscope.profile.population import iter_features

    features = list(iter_features(events, users))
    names = vocabulary(iter_features(events, sorted(events["user_id"].unique())))
    lm_backend.names = set(names)
    rows = []
    for writer in WRITERS:
        key = f"{label}-{writer.replace(' ', '_')}-{len(users)}-{args.seed}"
        ps, meta = _profile(key, events, users, writer, lm_backend, encoder, args)
        texts = [t if isinstance(t, str) else "" for t in ps.frame["profile"]]
        m = measure(texts, features, names)  # failed rows (none so far) count as empty
        rows.append({"data": label, "writer": writer, "users": len(users),
                     "failed": int((ps.frame["status"] != "ok").sum()),
                     "top-1 category": f"{m.top1_category:.0%}",
                     "top-3 categories": f"{m.top3_categories:.0%}",
                     "top place": "n/a" if m.top1_place is None else f"{m.top1_place:.0%}",
                     "contradiction rate": f"{m.contradiction_rate:.1%}",
                     "refuted (name/time/number)": "/".join(
                         str(m.refuted_by_kind[k]) for k in ("name", "time", "number")),
                     "consistency": f"{m.mean_consistency:+.2f}",
                     "lift": "n/a" if (lift := _lift(ps, features)) is None else f"{lift:.2f}",
                     "s/user": f"{meta['seconds'] / len(users):.2f}",
                     "_seconds": meta["seconds"], "_checks": meta.get("checks"),
                     "_example": texts[0]})
    return rows


ARCHETYPE_PHRASES = {"commuter": "a commuter", "student": "a student",
                     "night_gamer": "a night gamer", "shopper": "a shopper",
                     "business_traveller": "a business traveller", "homebody": "a homebody",
                     "fitness_fan": "a fitness fan"}


def persona_rows(lm_backend, encoder, args):
    """Archetype accuracy of each writer's persona on the SIMULATED population."""
    import numpy as np

    from uscope.data.datasets import load_dataset
    from uscope.profile.faithfulness import vocabulary
    from uscope.profile.grounded import persona_of
    from uscope.profile.population import iter_features

    sim = load_dataset("simulated", n_users=args.sim_users, days=7, seed=args.seed)
    truth = sim.extras["population"].archetypes  # user id -> archetype
    users = sorted(sim.events["user_id"].unique(), key=int)
    lm_backend.names = vocabulary(iter_features(sim.events, users))
    names = list(ARCHETYPE_PHRASES)
    anchors = encoder.encode([ARCHETYPE_PHRASES[n] for n in names])  # (K, D)
    rows = []
    for writer in WRITERS:
        key = f"simulated-{writer.replace(' ', '_')}-{len(users)}-{args.seed}"
        ps, _ = _profile(key, sim.events, users, writer, lm_backend, encoder, args)
        texts = [t if isinstance(t, str) else "" for t in ps.frame["profile"]]
        if writer == "SmolLM2 grounded":  # its persona sentence; the others' whole text
            texts = [persona_of(t) or "" for t in texts]
        with_text = [i for i, t in enumerate(texts) if t]
        guess = np.full(len(users), -1)
        if with_text:
            vectors = encoder.encode([texts[i] for i in with_text])  # (n, D)
            guess[with_text] = np.argmax(vectors @ anchors.T, axis=1)
        hits = [guess[i] >= 0 and names[guess[i]] == truth[u] for i, u in enumerate(users)]
        rows.append({"writer": writer, "users": len(users), "with a persona": len(with_text),
                     "archetype accuracy": f"{np.mean(hits):.1%}",
                     "chance": f"{1 / len(names):.1%}",
                     "x chance": f"{np.mean(hits) * len(names):.2f}"})
    return rows


def downstream_rows(lm_backend, encoder, args):
    """Foursquare NYC, later weeks of each test user, new venues: the profile-driven
    strategies with heuristic vs grounded profiles of the visible weeks (``popular`` as the
    anchor), and the paired per-user difference of Recall@10."""
    from uscope.data.datasets import load_dataset
    from uscope.profile.faithfulness import vocabulary
    from uscope.profile.population import iter_features
    from uscope.recommend.evaluate import EvalConfig, make_split, run_evaluation
    from uscope.recommend.metrics import paired_bootstrap

    events = load_dataset("foursquare-nyc").events
    config = EvalConfig(protocol="later-weeks", kind="place", users="test", seeds=(0,),
                        strategies={"popular": "popular", "neighbours": "neighbours",
                                    "hybrid": "hybrid"},
                        max_users=4 if args.quick else None)
    split = make_split(events, config, 0)
    visible, users = split.visible, sorted(events["user_id"].astype(str).unique())
    if args.quick:  # the evaluated users and as many others as neighbours
        users = sorted(set(split.users[:config.max_users]) | set(users[:config.max_users]))
    lm_backend.names = vocabulary(iter_features(visible, users))
    rows, per_user = [], {}
    for writer in ("heuristic", "SmolLM2 grounded"):
        key = f"foursquare-visible-weeks-{writer.replace(' ', '_')}-{len(users)}"
        ps, _ = _profile(key, visible, users, writer, lm_backend, encoder, args)
        result = run_evaluation(events, config, profiles=ps)
        for _, r in result.results.iterrows():
            rows.append({"profiles": writer, "strategy": r["strategy"], "users": r["users"],
                         "Recall@10": f"{r['Recall@10']:.4f}", "NDCG@10": f"{r['NDCG@10']:.4f}"})
        table = result.per_user.pivot_table(index="user_id", columns="strategy",
                                            values="Recall@10")
        per_user[writer] = table
    notes = []
    for strategy in ("neighbours", "hybrid"):
        a, b = per_user["SmolLM2 grounded"][strategy], per_user["heuristic"][strategy]
        d = paired_bootstrap(a.to_numpy(), b.loc[a.index].to_numpy())
        notes.append(f"{strategy}: grounded minus heuristic profiles, Recall@10 "
                     f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]")
    return rows, notes


def body(quality, persona, downstream, args, loads) -> str:
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in quality]
    lines = [(f"Users sampled per data set: {args.users} (seed {args.seed}); batch size "
             f"{args.batch_size}; torch threads {args.threads}; SmolLM2 greedy, free-form at "
             f"{args.max_new_tokens} new tokens, grounded the same budget for fields and free text "
             "together (at most 3 free sentences); each SmolLM2 writer warmed up on 2 users "
             "before its timed run; MiniLM embeds every writer's text. 1-min load average at start/end: "
             f"{loads[0]:.1f}/{loads[1]:.1f}."), "", markdown_table(public), ""]
    for data in dict.fromkeys(r["data"] for r in quality):
        rows = {r["writer"]: r for r in quality if r["data"] == data}
        ratio = rows["SmolLM2 grounded"]["_seconds"] / rows["SmolLM2 free"]["_seconds"]
        lines.append(f"- {data}: grounded costs {ratio:.2f}x the time of free generation; "
                     f"checks {rows['SmolLM2 grounded']['_checks']}.")
    lines += ["", "Persona (SIMULATED population; nearest archetype name by MiniLM cosine):", "",
              markdown_table(persona), "", "Example profiles (first sampled user):"]
    lines += [f"- {r['data']}, {r['writer']}: \"{r['_example']}\"" for r in quality]
    rows, notes = downstream
    lines += ["", ("Downstream (real Foursquare NYC, later weeks of each test user, new venues; "
              "profiles written from the visible weeks):"), "", markdown_table(rows), "",
              *[f"- {n}" for n in notes]]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = _args(sys.argv[1:] if argv is None else argv)
    import torch

    torch.set_num_threads(args.threads)
    from uscope.data.datasets import load_dataset
    from uscope.profile import GenerationConfig
    from uscope.profile.backends.hf import TransformersBackend
    from uscope.profile.pipeline import resolve_encoder

    start_load = os.getloadavg()[0]
    lm_backend = TransformersBackend(generation=GenerationConfig(
        max_new_tokens=args.max_new_tokens))
    encoder = resolve_encoder(None)
    quality = []
    for name, options in DATASETS.items():
        data = load_dataset(name, **options)
        users = _sample(data.events["user_id"].unique(), args.users, args.seed)
        quality += quality_rows(f"{name} (real)", data.events, users, lm_backend, encoder, args)
    persona = persona_rows(lm_backend, encoder, args)
    downstream = downstream_rows(lm_backend, encoder, args)
    text = body(quality, persona, downstream, args, (start_load, os.getloadavg()[0]))
    print(text)
    if not (args.quick or args.no_write):
        write_section("profile-grounded", "Grounded vs free profiles (SmolLM2-135M, CPU)", text)


if __name__ == "__main__":
    main()
