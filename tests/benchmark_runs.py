"""A benchmark script run as a user runs it, in a subprocess (for the tests of benchmarks/)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = REPO / "BENCHMARKS.md"


def benchmarks_digest() -> str:
    """SHA-256 of BENCHMARKS.md ("" when absent): a quick run must leave it as it was."""
    return hashlib.sha256(BENCHMARKS_MD.read_bytes()).hexdigest() if BENCHMARKS_MD.exists() \
        else ""


def command(script: str, dataset: str | None, extra: tuple[str, ...]) -> list[str]:
    """``python benchmarks/<script>.py [--dataset NAME] --quick --no-write EXTRA...``"""
    data = ["--dataset", dataset] if dataset else []
    return [sys.executable, str(REPO / "benchmarks" / f"{script}.py"), *data, "--quick",
            "--no-write", *extra]


def run(argv: list[str], tmp: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """``argv`` offline on one thread in ``tmp``; ``env`` adds or overrides variables."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONWARNINGS": "ignore", "TMPDIR": str(tmp), **(env or {})}
    return subprocess.run(argv, check=False, cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=900)
