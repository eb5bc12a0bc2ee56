"""What every BENCHMARKS.md header says of the machine (benchmarks/_report.py)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _report import cpu_description

ARCH = platform.processor() or platform.machine()


def cpuinfo(tmp_path: Path, model: str, flags: str) -> Path:
    path = tmp_path / f"cpuinfo-{len(list(tmp_path.iterdir()))}"
    core = f"processor\t: {{}}\nmodel name\t: {model}\nflags\t\t: fpu sse2 {flags}\n\n"
    path.write_text(core.format(0) + core.format(1))
    return path


def test_the_header_names_the_cpu_model_and_its_matrix_instructions(tmp_path):
    intel = cpuinfo(tmp_path, "Intel(R) Xeon(R) Platinum 8488C", "avx512f amx_tile amx_bf16")
    amd = cpuinfo(tmp_path, "AMD EPYC", "avx2 avx512f avx512_bf16")
    old = cpuinfo(tmp_path, "Some CPU", "avx2")
    assert cpu_description(intel) == f"{ARCH}, Intel(R) Xeon(R) Platinum 8488C, AMX"
    assert cpu_description(amd) == f"{ARCH}, AMD EPYC, AVX-512, no AMX"
    assert cpu_description(old) == f"{ARCH}, Some CPU, no AVX-512"
    assert cpu_description(tmp_path / "absent") == ARCH
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve\nCPU implementer\t: 0x41\n")
    assert cpu_description(arm) == ARCH
