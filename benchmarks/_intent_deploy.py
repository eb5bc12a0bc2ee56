"""The deployment figures of ``bench_intent.py``'s student: size, per-device state, latency
and the TorchScript export (checked against PyTorch)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from generative.intent import export_torchscript, load_exported, max_export_error


def latency(model, samples, threads=1):
    torch.set_num_threads(threads)
    one = samples.subset(torch.arange(1))
    times = []
    with torch.no_grad():
        for i in range(220):
            start = time.perf_counter()
            model(**one.inputs())
            if i >= 20:
                times.append(time.perf_counter() - start)
        batch = samples.subset(torch.arange(min(256, len(samples))))
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            model(**batch.inputs())
            runs.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), len(batch) / float(
        np.median(runs))


def deployment(run, student, teacher, adapters) -> list[dict]:
    """The student's size, latency and TorchScript export (models without h_u only)."""
    data = run.data
    adapter_params = next(iter(adapters.values())).n_parameters()
    rows = [
        {"quantity": "student parameters", "value": f"{student.n_parameters() / 1e6:.2f}M "
         f"(paper: 10.86M); backbone {student.backbone_label}"},
        {"quantity": "per-device state (adapter)", "value": f"{adapter_params:,} parameters "
         f"({adapter_params * 4 / 1024:.1f} KiB, {adapter_params / student.n_parameters():.2%}"
         " of the student)"},
        {"quantity": "teacher parameters", "value": f"{teacher.n_parameters() / 1e6:.2f}M"}]
    if run.h is not None:
        return rows + [{"quantity": "latency and TorchScript export", "value": "not measured: "
                        "the export supports models without h_u conditioning"}]
    p50, p95, throughput = latency(student, data.test)
    user0 = int(data.test.user[0])
    with tempfile.TemporaryDirectory() as tmp:
        path = export_torchscript(student, Path(tmp) / "student.pt", data.test.subset(
            torch.arange(2)), adapters.get(user0))
        exported = load_exported(path)
        error = max_export_error(student, exported, data.test.subset(data.test.user == user0),
                                 adapters.get(user0))
        error_batch = max_export_error(student, exported, data.test.subset(
            torch.arange(min(256, len(data.test)))), adapters.get(user0))
        size_mb = path.stat().st_size / 1e6
        e50, e95, ethroughput = latency(lambda **kw: exported(*kw.values()), data.test)
    return rows + [
        {"quantity": "single prediction latency, PyTorch, 1 thread",
         "value": f"p50 {p50:.2f} ms, p95 {p95:.2f} ms (paper: 2.85 ms)"},
        {"quantity": "single prediction latency, TorchScript, 1 thread",
         "value": f"p50 {e50:.2f} ms, p95 {e95:.2f} ms"},
        {"quantity": "batch throughput (256 windows), 1 thread",
         "value": f"PyTorch {throughput:,.0f}/s, TorchScript {ethroughput:,.0f}/s"},
        {"quantity": "TorchScript export vs PyTorch, max abs logit difference",
         "value": f"{error:.2e} (one device's test windows), {error_batch:.2e} (256 windows)"
                  f"; file {size_mb:.1f} MB"}]
