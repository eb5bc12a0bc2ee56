"""Preference triplets (x, y_w, y_l) for DPO (seed paper 000, Sec. 5.3, eq. 27).

    python recipes/build_preferences.py --simulate-users 80 --out runs/prefs \
        --chosen-backend transformers --samples 4 --temperature 0.8 --rejected mismatched
    python recipes/build_preferences.py --events runs/sim/events.parquet --out runs/prefs \
        --chosen-backend openai --base-url http://localhost:8000/v1 --rejected heuristic

x is the profiling prompt x_u (``prompts/profile_v2.j2``) of each training user's history
before the cut-off. y_w is the teacher's profile (``--chosen-backend``; with ``--samples K``
the best of K by the consistency score c(y | H_u) of ``uscope.tuning.preferences``; the
``heuristic`` writer is a teacher too). y_l is the heuristic profile (``--rejected heuristic``)
or the chosen profile of the least similar other user (``--rejected mismatched``). A triplet
is written only when c(y_w) - c(y_l) > ``--margin``; the others are counted in the manifest.

Faithfulness pairs (issue 22): ``--rejected contradicting --samples K`` ranks the model's own K
samples per user by ``uscope.profile.faithfulness``: y_w = the most consistent sample without a
refuted claim, y_l = the one with the most refuted claims (config:
``recipes/smollm2-135m/dpo/config_faithfulness.yaml``):

    python recipes/build_preferences.py --events EVENTS --cutoff 2100-01-01 \
        --out runs/prefs-faithfulness --chosen-backend transformers --samples 4 \
        --temperature 0.9 --rejected contradicting

Writes OUT/train.jsonl (the preference dataset for recipes/dpo.py), OUT/samples.jsonl (the
teacher's samples; ``--resume`` continues from it) and OUT/manifest.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from uscope.data.splits import cutoff_time
    from uscope.profile.backends import HeuristicBackend
    from uscope.profile.features import FeatureConfig
    from uscope.profile.pipeline import build_requests
    from uscope.profile.prompting import load_template
    from uscope.tuning.formats import TRAIN_FILE, validate_preferences, write_jsonl
    from uscope.tuning.joblog import JobLog
    from uscope.tuning.preferences import REJECTED_SOURCES, build_triplets, collect_samples
    from uscope.tuning.sources import (
        add_source_arguments,
        add_teacher_arguments,
        load_events,
        make_teacher,
        parse_cutoff,
        write_manifest,
    )
    from uscope.tuning.tasks import split_users

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    parser.add_argument("--samples", type=int, default=1, help="teacher profiles per user")
    parser.add_argument("--rejected", default="mismatched", choices=REJECTED_SOURCES)
    parser.add_argument("--margin", type=float, default=0.0,
                        help="keep a triplet when c(y_w) - c(y_l) exceeds this (not with contradicting)")
    parser.add_argument("--template", default="profile_v2", help="profiling prompt x_u")
    parser.add_argument("--resume", action="store_true", help="continue OUT/samples.jsonl")
    add_source_arguments(parser)
    add_teacher_arguments(parser, max_new_tokens=160, backend_flag="--chosen-backend",
                          backend_help="heuristic | transformers | vllm | openai: who writes y_w")
    args = parser.parse_args(argv)
    if args.samples > 1 and args.temperature <= 0 and args.teacher_backend != "heuristic":
        parser.error("--samples > 1 needs --temperature > 0 (greedy samples are identical)")
    if args.rejected == "contradicting" and (args.samples < 2
                                             or args.teacher_backend == "heuristic"):
        parser.error("--rejected contradicting ranks a model's own samples: it needs an LLM "
                     "--chosen-backend and --samples >= 2")
    if args.teacher_backend == "heuristic" and args.rejected == "heuristic":
        parser.error("--rejected heuristic needs a chosen backend other than heuristic")

    events, described = load_events(args.events, simulate_users=args.simulate_users,
                                    days=args.simulate_days, seed=args.simulate_seed)
    users = sorted(events["user_id"].astype(str).unique())
    train, held_out = split_users(users, args.heldout_fraction, args.split_seed)
    train = train[: args.max_users]
    cut = cutoff_time(events, parse_cutoff(args.cutoff))
    history = events[(events["timestamp"] < cut) & events["user_id"].astype(str).isin(train)]
    present = sorted(history["user_id"].astype(str).unique())
    template = load_template(args.template)
    requests = build_requests(history.reset_index(drop=True), present, template, FeatureConfig())
    if args.teacher_backend == "heuristic":
        teacher, samples = HeuristicBackend(), 1
    else:
        teacher, samples = make_teacher(args), args.samples
    print(f"{described}: {len(present)} training users with history before {cut}, "
          f"{len(held_out)} held out; teacher {teacher.model} x {samples}")
    log = JobLog(args.out / "samples.jsonl", resume=args.resume)
    texts = collect_samples(requests, teacher, log, samples=samples, batch_size=args.batch_size,
                            progress=lambda n: print(f"  {n} users done", flush=True))
    rows, report = build_triplets(requests, texts, rejected=args.rejected, margin=args.margin)
    if rows:
        write_jsonl(args.out / TRAIN_FILE, validate_preferences(rows, str(args.out)))
    write_manifest(args.out, {
        "dataset": "preference", "data": described, "chosen": teacher.model,
        "samples": samples, "rejected": args.rejected, "margin": args.margin,
        "template": template.version, "cutoff": str(cut), "train_users": train,
        "heldout_users": held_out, "heldout_fraction": args.heldout_fraction,
        "split_seed": args.split_seed, "report": report.as_dict()})
    print(f"wrote {report.written} triplets of {report.users} users; dropped "
          f"{dict(report.dropped)}; {report.as_dict()}")
    if not rows:
        print("no triplet kept: no dataset written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
