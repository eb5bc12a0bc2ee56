"""Write one benchmark's section of BENCHMARKS.md, replacing the previous run of it in place.

Each script owns the block between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; the block
starts with the date, the machine and the command that produced it.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEvery table below is written by a script in `benchmarks/`; rerun it to refresh.\n"


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """Architecture, model name and matrix instructions (AMX, AVX-512): CPUs of one
    architecture differ several-fold in bf16 speed, so a timed table names them."""
    arch = platform.processor() or platform.machine()
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:                                   # not Linux: the architecture only
        return arch

    def field(name: str) -> str:
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(name)), "")

    flags = set(field("flags").split())             # x86 only (Arm lists "Features")
    isa = ("" if not flags else "AMX" if "amx_bf16" in flags
           else "AVX-512, no AMX" if "avx512f" in flags else "no AVX-512")
    return ", ".join(part for part in (arch, field("model name"), isa) if part)


def machine() -> str:
    import torch

    cpu = cpu_description()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def provenance() -> str:
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    return (f"_Run {_dt.date.today().isoformat()} on {machine()}. Command: `{command}`._\n")


def write_section(name: str, title: str, body: str) -> Path:
    """Replace (or append) the section `name` of BENCHMARKS.md with `title` and `body`."""
    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else HEADER
    block = (f"<!-- BEGIN {name} -->\n## {title}\n\n{provenance()}\n{body.strip()}\n"
             f"<!-- END {name} -->")
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->",
                         re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else (
        text.rstrip("\n") + "\n\n" + block + "\n")
    BENCHMARKS_MD.write_text(text, encoding="utf-8")
    return BENCHMARKS_MD


def publish(name: str, title: str, body: str, *, write: bool) -> None:
    """Print ``body``; then write it as section ``name`` of BENCHMARKS.md, or say it was not."""
    print(body, flush=True)
    if write:
        write_section(name, title, body)
    else:
        print("(--quick/--no-write: not written to BENCHMARKS.md)")


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
