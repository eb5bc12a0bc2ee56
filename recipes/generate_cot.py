"""Chain-of-thought traces for SFT, kept by rejection sampling (seed paper 000, Sec. 7.5).

    python recipes/generate_cot.py --events runs/sim/events.parquet --out runs/cot \
        --teacher-backend openai --base-url http://localhost:8000/v1 --teacher-model Qwen3-235B \
        --mode sample --samples 4 --temperature 0.7
    python recipes/generate_cot.py --simulate-users 80 --out runs/cot --mode rationalize

For each training user and task (novel app, novel location, next novel intent) the teacher
gets ``prompts/cot_v1.j2`` (profile, recent history, candidates) and answers "Reasoning: ...
Answer: ...". Only replies whose answer is one of the user's new items after the cut-off are
kept (``uscope.tuning.cot``); every other reply is dropped and counted by reason. Modes:
``sample`` (pure rejection sampling), ``rationalize`` (the teacher is told the answer and
explains it, STaR-style; the reply is still parsed and checked and the hint never enters the
training example), ``star`` (sample, then rationalise what sampling missed). Offline the only
teacher is SmolLM2-135M, which rarely picks a right answer unaided: use ``rationalize`` there.

Writes OUT/train.jsonl (the ``messages`` dataset for recipes/sft.py), OUT/attempts.jsonl
(every reply with its outcome; ``--resume`` continues from it) and OUT/manifest.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from uscope.tuning.cot import MODES, accepted_examples, generate_traces
    from uscope.tuning.formats import TRAIN_FILE, validate_messages, write_jsonl
    from uscope.tuning.joblog import JobLog
    from uscope.tuning.sources import (
        add_source_arguments,
        add_teacher_arguments,
        load_events,
        make_teacher,
        parse_cutoff,
        write_manifest,
    )
    from uscope.tuning.tasks import TASKS, build_cases, split_users

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--mode", default="star", choices=MODES)
    parser.add_argument("--samples", type=int, default=1, help="replies per case when sampling")
    parser.add_argument("--max-candidates", type=int, default=20,
                        help="candidate shortlist, as the llm strategy's max_candidates")
    parser.add_argument("--resume", action="store_true", help="continue OUT/attempts.jsonl")
    add_source_arguments(parser)
    add_teacher_arguments(parser, prefill_option=True)
    args = parser.parse_args(argv)
    if args.samples > 1 and args.temperature <= 0:
        parser.error("--samples > 1 needs --temperature > 0 (greedy replies are identical)")

    events, described = load_events(args.events, simulate_users=args.simulate_users,
                                    days=args.simulate_days, seed=args.simulate_seed)
    users = sorted(events["user_id"].astype(str).unique())
    train, held_out = split_users(users, args.heldout_fraction, args.split_seed)
    train = train[: args.max_users]
    cases, report = build_cases(events, train, cutoff=parse_cutoff(args.cutoff),
                                kinds=args.tasks, max_candidates=args.max_candidates)
    print(f"{described}: {len(train)} training users, {len(held_out)} held out; "
          f"{len(cases)} cases {report.built}")
    teacher = make_teacher(args, complete_sentences=False)  # "Answer: X" lines
    log = JobLog(args.out / "attempts.jsonl", resume=args.resume)
    summary = generate_traces(cases, teacher, log, mode=args.mode, samples=args.samples,
                              batch_size=args.batch_size,
                              progress=lambda n: print(f"  {n} cases done", flush=True))
    examples = accepted_examples(log, [c.key for c in cases])
    if examples:
        write_jsonl(args.out / TRAIN_FILE, validate_messages(examples, str(args.out)))
    write_manifest(args.out, {
        "dataset": "messages", "data": described, "teacher": teacher.model,
        "teacher_backend": args.teacher_backend, "mode": args.mode, "samples": args.samples,
        "temperature": args.temperature, "cutoff": args.cutoff, "tasks": args.tasks,
        "train_users": train, "heldout_users": held_out, "heldout_fraction":
        args.heldout_fraction, "split_seed": args.split_seed, "cases": report.__dict__,
        "summary": summary.as_dict(), "examples": len(examples)})
    replies = summary.as_dict()["replies"]
    print(f"accepted {summary.accepted} of {summary.cases} cases "
          f"(by mode {dict(summary.accepted_by_mode)}); replies by outcome {replies}")
    for dropped in summary.dropped_examples[:3]:
        print(f"  dropped {dropped['key']} ({dropped['outcome']}: {dropped['detail']})")
    if not examples:
        print("no trace was accepted: no dataset written", file=sys.stderr)
        return 1
    print(f"wrote {len(examples)} examples to {args.out / TRAIN_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
