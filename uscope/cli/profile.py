"""`uscope profile`: batch U-SCOPE profiling (eq. 21-24), sharded and resumable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import pyarrow.parquet as pq
import typer

from uscope.cli import app
from uscope.cli.data import read_any


def _is_event_table(path: Path, fmt: str | None) -> bool:
    """A parquet file in the event schema (``uscope read --out``, ``save_events``): the job
    streams it in blocks of users instead of loading it whole."""
    from uscope.data.schema import REQUIRED_COLUMNS

    if fmt not in (None, "generic") or path.suffix != ".parquet" or not path.is_file():
        return False
    return set(REQUIRED_COLUMNS) <= set(pq.read_schema(path).names)


def _sorted_by_user(path: Path) -> bool:
    """Whether the job can stream ``path``; an unsorted file is read whole, with a note."""
    from uscope.data import DataError
    from uscope.profile.stream import ParquetSource

    try:
        ParquetSource(path).users()
    except DataError as exc:
        if "not sorted" not in str(exc):
            raise
        typer.echo(f"note: {path} is not sorted by user_id, so it is read whole; "
                   "`uscope read` writes a sorted copy the job reads in blocks of users")
        return False
    return True


@contextmanager
def _progress_bars(enabled: bool, desc: str) -> Iterator[Callable[[int, int], Any]]:
    """The jobs' ``progress`` callback: a tqdm bar started at the users already done, closed
    when the block ends."""
    from tqdm.auto import tqdm

    bars: list = []

    def start_bar(done: int, total: int):
        bars.append(tqdm(total=total, initial=done, unit="user", disable=not enabled,
                         desc=desc))
        return bars[-1].update

    try:
        yield start_bar
    finally:
        for bar in bars:
            bar.close()


def _run_on_ray(events, out, config, backend, model, options, encoder, precision,
                generation, address, workers, gpus, stage, threads, progress, shard):
    from uscope.profile.ray_engine import WorkerSpec, run_ray_job

    spec = WorkerSpec(backend=backend, model=model, backend_options=options, encoder=encoder,
                      precision=precision, generation=generation, threads=threads or 1,
                      gpus=gpus, llm_stage=stage)
    with _progress_bars(progress, f"profile {shard} (ray)") as start_bar:
        return run_ray_job(events, out, spec, config, address=address, workers=workers,
                           progress=start_bar)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def profile(
    events: Annotated[Path, typer.Argument(help="Events: parquet table, Tsinghua dir, netfp or "
                                                "generic CSV.")],
    out: Annotated[Path, typer.Option(help="Output ProfileSet (parquet).")],
    backend: Annotated[str, typer.Option(help="heuristic | transformers | vllm | openai")]
    = "transformers",
    model: Annotated[str | None, typer.Option(help="Model path or hub id (default: bundled "
                                                   "SmolLM2-135M-Instruct for transformers).")]
    = None,
    encoder: Annotated[str | None, typer.Option(help="Sentence encoder path (default: bundled "
                                                     "all-MiniLM-L6-v2).")] = None,
    precision: Annotated[str | None, typer.Option(help="Encoder precision: fp32 or bf16 "
                                                       "(default: bf16 on a CPU with native "
                                                       "bf16, else fp32).")] = None,
    batch_size: Annotated[int, typer.Option(help="Users per backend call.")] = 8,
    chunk_size: Annotated[int, typer.Option(help="Users per chunk file (work lost to a "
                                                 "kill).")] = 256,
    shard: Annotated[str, typer.Option(help="i/n: profile the users whose stable hash is i "
                                            "mod n (0-based).")] = "0/1",
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run into --out.")] = False,
    retry_failed: Annotated[bool, typer.Option(help="With --resume: profile the users whose "
                                                    "profile failed again.")] = False,
    template: Annotated[str, typer.Option(help="Prompt template name in prompts/ or .j2 path: "
                                               "grounded_v1 (grounded) or profile_v2 (free).")]
    = "grounded_v1",
    max_events: Annotated[int, typer.Option(help="History budget: most recent events kept "
                                                 "per user.")] = 20_000,
    max_new_tokens: Annotated[int, typer.Option(help="LLM output budget.")] = 160,
    complete_sentences: Annotated[bool, typer.Option(help="Cut each free LLM text after its "
                                                          "last sentence end (a text with none "
                                                          "fails and is retried).")] = True,
    retries: Annotated[int, typer.Option(help="Extra attempts for a failed/empty profile.")] = 2,
    base_url: Annotated[str | None, typer.Option(help="openai backend: endpoint base URL.")]
    = None,
    timeout: Annotated[float, typer.Option(help="openai backend: seconds per request.")] = 60.0,
    concurrency: Annotated[int, typer.Option(help="openai backend: requests in flight.")] = 8,
    tensor_parallel: Annotated[int, typer.Option(help="vllm backend: GPUs per model.")] = 1,
    lora: Annotated[str | None, typer.Option(help="vllm backend: LoRA adapter folder.")] = None,
    kv_cache_gib: Annotated[float | None, typer.Option(help="vllm backend: KV cache size in GiB "
                                                           "(default: vLLM's).")] = None,
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter folder (e.g. from recipes/"
                                                     "dpo.py) for the transformers backend; "
                                                     "same as --lora for vllm.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Input format (default: by "
                                                             "suffix).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's "
                                                     "choice; per worker with --engine ray)."
                                                )] = None,
    engine: Annotated[str, typer.Option(help="local (this process) or ray (Ray Data actor "
                                             "pool; EVENTS must be a parquet event table).")]
    = "local",
    address: Annotated[str | None, typer.Option(help="--engine ray: a running cluster (auto "
                                                     "or HOST:PORT); default: start a local "
                                                     "one.")] = None,
    workers: Annotated[int, typer.Option(help="--engine ray: profiler actors, each holding "
                                              "its own backend and encoder.")] = 1,
    gpus_per_worker: Annotated[float | None, typer.Option(help="--engine ray: GPUs each "
                                                               "worker reserves (default: "
                                                               "--tensor-parallel for vllm on "
                                                               "a cluster with GPUs, else 0)."
                                                          )] = None,
    llm_stage: Annotated[str | None, typer.Option(help="--engine ray --backend vllm: "
                                                       "ray-data-llm (vLLM engines as ray.data"
                                                       ".llm processor stages; the default on "
                                                       "a cluster with GPUs) or actor (an "
                                                       "engine in each profiler actor; the "
                                                       "default on CPUs).")] = None,
) -> None:
    """Write a natural-language profile and an embedding for every user of EVENTS."""

    from uscope.data import DataError
    from uscope.profile import (
        FeatureConfig,
        GenerationConfig,
        JobConfig,
        ProfileConfig,
        ProfileEncoder,
        make_backend,
        parse_shard,
        run_profile_job,
    )

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        if engine not in ("local", "ray"):
            raise ValueError(f"--engine must be local or ray, got {engine!r}")
        if engine == "local" and (address is not None or workers != 1
                                  or gpus_per_worker is not None or llm_stage is not None):
            raise ValueError("--address, --workers, --gpus-per-worker and --llm-stage apply to "
                             "--engine ray")
        shard_spec = parse_shard(shard)
        if kv_cache_gib is not None and backend != "vllm":
            raise ValueError(f"--kv-cache-gib applies to the vllm backend, not {backend!r}")
        if adapter and backend not in ("transformers", "vllm"):
            raise ValueError(f"--adapter applies to the transformers and vllm backends, not "
                             f"{backend!r}")
        options: dict = {}
        if backend == "openai":
            options = {"timeout_s": timeout, "concurrency": concurrency}
            if base_url:
                options["base_url"] = base_url
        elif backend == "vllm":
            options = {"tensor_parallel_size": tensor_parallel, "lora_path": lora or adapter,
                       "kv_cache_gib": kv_cache_gib}
        elif backend == "transformers" and adapter:
            options = {"adapter": adapter}
        config = JobConfig(
            profile=ProfileConfig(template=template, features=FeatureConfig(max_events=max_events),
                                  batch_size=batch_size, retries=retries),
            shard=shard_spec, chunk_size=chunk_size, resume=resume, retry_failed=retry_failed,
        )
        generation = GenerationConfig(max_new_tokens=max_new_tokens,
                                      complete_sentences=complete_sentences)
        if engine == "ray":
            if not _is_event_table(events, fmt):
                raise ValueError(f"--engine ray reads a parquet event table; write {events} as "
                                 "one first: uscope read EVENTS --out events.parquet")
            summary = _run_on_ray(events, out, config, backend, model, options, encoder,
                                  precision, generation, address, workers,
                                  gpus_per_worker, llm_stage, threads, progress, shard)
            typer.echo(summary.render())
            return
        if _is_event_table(events, fmt) and _sorted_by_user(events):
            table = events  # read in blocks of users by the job itself
            if pq.ParquetFile(events).metadata.num_rows == 0:
                raise DataError(f"{events} holds no events: no user to profile")
        else:
            table, _ = read_any(events, fmt, lenient=False, rejects=None)
            if table.empty:  # before any model is loaded
                raise DataError(f"{events} holds no events: no user to profile")
        writer = make_backend(backend, model, generation, **options)
        embedder = ProfileEncoder(encoder, precision=precision)
        with _progress_bars(progress, f"profile {shard}") as start_bar:
            summary = run_profile_job(table, out, writer, embedder, config, progress=start_bar)
    except (DataError, ValueError, FileExistsError, FileNotFoundError, ImportError) as exc:
        _fail(str(exc))
    typer.echo(summary.render())
    checks = getattr(writer, "grounded_stats", None)
    if checks is not None and checks.counts["users"]:
        typer.echo(f"grounded checks: {checks.as_dict()}")
