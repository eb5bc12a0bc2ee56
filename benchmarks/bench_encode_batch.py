"""How many profile texts MiniLM should encode a forward pass: speed and momentary memory.

The heuristic profile texts of every real netfp device, encoded by ``ProfileEncoder`` in each of
``--precisions`` (one torch thread) as the batch job encodes them, a chunk of users an encode
call, at each of ``--batch-sizes`` texts a forward pass.
- Speed: medians of ``--repeats`` rounds in one process, each round running every case once in
  turn (side by side), after one untimed pass of each case.
- Momentary memory: each case in a fresh process, after one untimed pass; freed memory is handed
  back, the high-water mark reset (``/proc/self/clear_refs``, Linux), then one pass runs; its
  momentary memory is the new high-water mark less the resident memory before it. The largest
  such moment over a job is what its peak adds to what it holds (``bench_memory.py``).

Run: python benchmarks/bench_encode_batch.py [--batch-sizes 8 16 32 64]
     [--precisions fp32 bf16] [--repeats 3] [--quick]
``--quick``: 150 devices, one round; ``--no-write`` (implied) leaves BENCHMARKS.md alone.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import load_named
from _measure import interleaved, reset_peak, rss_mb
from _report import markdown_table, publish

SECTION = "encode-batch"
QUICK_USERS = 150


def profile_texts(n_users: int | None) -> list[str]:
    """The heuristic profile texts of the first ``n_users`` real netfp devices (all: None)."""
    from uscope.data.schema import validate_events
    from uscope.profile.backends import heuristic_profile
    from uscope.profile.population import population_features

    events = validate_events(load_named("netfp", (), "bench_encode_batch",
                                        max_users=n_users).events)
    users = sorted(events["user_id"].unique())
    return [heuristic_profile(f) for f in population_features(events, users)]


def encode_as_job(encoder, texts: list[str]) -> None:
    """``texts`` encoded a job chunk at a time, as ``run_profile_job`` encodes them."""
    from uscope.profile import JobConfig

    chunk = JobConfig().chunk_size
    for start in range(0, len(texts), chunk):
        encoder.encode(texts[start:start + chunk])


def encoder_at(precision: str, batch_size: int):
    import torch

    from uscope.profile import ProfileEncoder

    torch.set_num_threads(1)
    return ProfileEncoder(precision=precision, batch_size=batch_size)


def momentary_mb(precision: str, batch_size: int, n_users: int | None) -> float:
    """In this process: one untimed pass, then the momentary memory of one more (nan where the
    high-water mark cannot be reset)."""
    from uscope.profile.stream import release_freed_memory

    texts = profile_texts(n_users)
    encoder = encoder_at(precision, batch_size)
    encode_as_job(encoder, texts)
    release_freed_memory()
    if not reset_peak():
        return math.nan
    before = rss_mb()
    encode_as_job(encoder, texts)
    return rss_mb("VmHWM") - before


def momentary_in_fresh_process(precision: str, batch_size: int, n_users: int | None) -> float:
    argv = [sys.executable, __file__, "--momentary", precision, str(batch_size)]
    argv += ["--quick"] if n_users is not None else []
    done = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--momentary", nargs=2, metavar=("PRECISION", "BATCH_SIZE"),
                        help=argparse.SUPPRESS)  # one case's memory, in its own process
    args = parser.parse_args()
    n_users = QUICK_USERS if args.quick else None
    if args.momentary:
        print(momentary_mb(args.momentary[0], int(args.momentary[1]), n_users))
        return
    if args.quick:
        args.repeats, args.no_write = 1, True
    from uscope.profile.encoder import ENCODE_BATCH_SIZE, default_precision

    texts = profile_texts(n_users)
    cases = {f"{precision} x {size}": (precision, size)
             for precision in args.precisions for size in args.batch_sizes}
    encoders = {name: encoder_at(*case) for name, case in cases.items()}
    for encoder in encoders.values():
        encode_as_job(encoder, texts)  # first-call costs (each shape's kernels) off the clock
    seconds, _ = interleaved({name: (lambda e=encoder: encode_as_job(e, texts))
                              for name, encoder in encoders.items()}, args.repeats)
    rows = []
    for name, (precision, size) in cases.items():
        extra = momentary_in_fresh_process(precision, size, n_users)
        rows.append({"precision": precision,
                     "texts a pass": f"{size}{' (default)' if size == ENCODE_BATCH_SIZE else ''}",
                     "median s": f"{seconds[name]:.1f}",
                     "texts/s": f"{len(texts) / seconds[name]:.0f}",
                     "momentary MB above resident": f"{extra:.0f}"})
    lengths = sorted(map(len, texts))
    body = (f"Real netfp: the heuristic profile texts of {len(texts):,} devices "
            f"({len(set(texts)):,} distinct; {lengths[len(lengths) // 2]} characters at the "
            f"median, {lengths[-1]} at most), MiniLM on one torch thread (this CPU's default "
            f"precision: {default_precision()}); medians of {args.repeats} rounds run side by "
            "side; each case's momentary memory from its own process.\n\n"
            + markdown_table(rows) + "\n")
    publish(SECTION, "MiniLM texts a forward pass: speed and momentary memory", body,
            write=not args.no_write)


if __name__ == "__main__":
    main()
