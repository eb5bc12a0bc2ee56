"""``--engine ray``: the batch job (``uscope.profile.batch``) on a Ray cluster with Ray Data.

The driver lists the shard's users as the local job does and cuts them, in sorted order, into
buckets of ``chunk_size`` users. Ray Data reads the parquet events, tags each row with its
user's bucket (dropping other shards' rows and finished buckets), groups the rows by bucket,
and an actor pool of ``workers`` profilers - each loads its backend and encoder once -
profiles one bucket per call and writes it as ``chunk-bNNNNNN.parquet`` (atomic). A bucket's
users are fixed by the job, so a task retried after a killed worker rewrites the same file,
and a rerun after a killed driver skips the buckets already written: no user is lost or
written twice. The driver then merges the chunks exactly as the local job does, so both
engines write the same rows. With ``--backend vllm`` on a cluster with GPUs the engines run
by default as a ``ray.data.llm`` processor between replay passes of such actors
(``uscope.profile.ray_llm``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uscope.data.schema import validate_events
from uscope.profile.backends import GenerationConfig, make_backend
from uscope.profile.batch import (
    JobConfig,
    JobSummary,
    job_record,
    job_summary,
    merge_parts,
    open_job,
    parts_dir,
    shard_of,
    shard_users,
)
from uscope.profile.encoder import ProfileEncoder, default_precision, encoder_label
from uscope.profile.pipeline import ProfileConfig, build_requests, profile_chunk
from uscope.profile.prompting import load_template
from uscope.profile.stream import ParquetSource, release_freed_memory

BUCKET = "__bucket"


@dataclass(frozen=True)
class WorkerSpec:
    """What each profiler actor builds once: its backend and its encoder."""

    backend: str = "heuristic"
    model: str | None = None
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    backend_options: dict[str, Any] = field(default_factory=dict)
    encoder: str | None = None  # None: the bundled all-MiniLM-L6-v2
    precision: str | None = None  # the encoder's; None: the driver CPU's default, for all
    threads: int = 1  # torch threads per actor
    gpus: float | None = None  # GPUs per actor (per vLLM engine); None: see ``actor_gpus``
    llm_stage: str | None = None  # "ray-data-llm" or "actor"; None: see ``llm_stage``


def bucket_file(parts: Path, bucket: int) -> Path:
    return parts / f"chunk-b{bucket:06d}.parquet"


def _tag_buckets(batch: pd.DataFrame, bounds: np.ndarray, shard: tuple[int, int],
                 todo: frozenset[int]) -> pd.DataFrame:
    """Keep this shard's rows of unfinished buckets, each tagged with its bucket."""
    ids, uniques = pd.factorize(batch["user_id"].astype(str))
    names = np.asarray(uniques, dtype=str)
    in_shard = np.array([shard_of(u, shard[1]) == shard[0] for u in names], dtype=bool)
    bucket = np.searchsorted(bounds, names, side="right") - 1
    keep = in_shard & np.isin(bucket, list(todo))
    rows = keep[ids]
    return batch[rows].assign(**{BUCKET: bucket[ids][rows]})


def bucket_requests(group: pd.DataFrame, template, features
                    ) -> tuple[int, list[str], list]:
    """(bucket, its users in order, their ``ProfileRequest``s) of one group of tagged rows."""
    bucket = int(group[BUCKET].iloc[0])
    events = validate_events(group.drop(columns=[BUCKET]), source=f"bucket {bucket}")
    users = sorted(events["user_id"].unique().tolist())
    return bucket, users, build_requests(events, users, template, features)


class BucketActor:
    """What every bucket actor loads once: torch threads, the encoder, the template."""

    def __init__(self, spec: WorkerSpec, profile: ProfileConfig, parts: str):
        import torch

        torch.set_num_threads(spec.threads)
        self.encoder = ProfileEncoder(spec.encoder, precision=spec.precision)
        self.profile = profile
        self.template = load_template(profile.template)
        self.parts = Path(parts)


class BucketProfiler(BucketActor):
    """A Ray actor: profiles a bucket of users a call and writes its chunk file."""

    def __init__(self, spec: WorkerSpec, profile: ProfileConfig, parts: str):
        super().__init__(spec, profile, parts)
        self.backend = make_backend(spec.backend, spec.model, spec.generation,
                                    **spec.backend_options)

    def __call__(self, group: pd.DataFrame) -> pd.DataFrame:
        bucket, users, requests = bucket_requests(group, self.template, self.profile.features)
        chunk = profile_chunk(requests, self.backend, self.encoder, self.template, self.profile)
        chunk.save(bucket_file(self.parts, bucket))  # atomic; a retry rewrites the same file
        n_users = len(users)
        del requests, chunk
        release_freed_memory()
        return pd.DataFrame({"bucket": [bucket], "n_users": [n_users]})


def _actor_cpus(total: float, workers: int) -> float:
    """CPUs each profiler actor reserves: the actors leave one CPU to the read and shuffle
    tasks (reserving every CPU stalls the pipeline), and take at most one each."""
    return max(0.25, min(1.0, (total - 1.0) / workers))


def actor_gpus(spec: WorkerSpec, cluster_gpus: float, workers: int = 1) -> float:
    """GPUs each profiler actor reserves (Ray then shows it only those devices): ``spec.gpus``
    when given; else a vllm backend on a cluster with GPUs takes its tensor-parallel size, one
    engine per actor; else none (the CPU backends, vLLM's CPU build). The pool's fixed size
    must fit the cluster's GPUs (start GPU nodes that scale on demand first), or it would wait
    for them forever."""
    if spec.gpus is not None:
        if spec.gpus < 0:
            raise ValueError(f"--gpus-per-worker must be >= 0, got {spec.gpus}")
        gpus, option = spec.gpus, "--gpus-per-worker"
    elif spec.backend == "vllm" and cluster_gpus > 0:
        gpus = float(spec.backend_options.get("tensor_parallel_size", 1))
        option = "--tensor-parallel"
    else:
        return 0.0
    if workers * gpus > cluster_gpus:
        raise ValueError(f"--workers {workers} x {gpus:g} GPUs each ({option}) need "
                         f"{workers * gpus:g} GPUs but the cluster has {cluster_gpus:g}")
    return gpus


def llm_stage(spec: WorkerSpec, cluster_gpus: float) -> str:
    """Where the LLM runs: "ray-data-llm", vLLM engines as ``ray.data.llm`` processor stages
    between passes of CPU profiler actors (``uscope.profile.ray_llm``; the vllm backend's
    default on a cluster with GPUs), or "actor", each profiler actor holding its own backend
    (the default otherwise: on CPUs, restarting the engines each round costs more than
    they gain, BENCHMARKS ``profile-ray-vllm``)."""
    default = "ray-data-llm" if spec.backend == "vllm" and cluster_gpus > 0 else "actor"
    stage = spec.llm_stage or default
    if stage not in ("actor", "ray-data-llm"):
        raise ValueError(f"--llm-stage must be actor or ray-data-llm, got {stage!r}")
    if stage == "ray-data-llm" and spec.backend != "vllm":
        raise ValueError(f"--llm-stage ray-data-llm runs vLLM engines: it needs --backend vllm, "
                         f"not {spec.backend!r}")
    return stage


@dataclass(frozen=True)
class BucketPass:
    """One Ray Data pass over unfinished buckets: the events read, tagged with their bucket
    and grouped by it, then an actor pool (``workers`` actors of ``actor``, built with
    ``args``) called once a bucket. Yields the actors' result frames."""

    events: str
    bounds: np.ndarray  # first user of each bucket
    shard: tuple[int, int]
    workers: int
    cpus: float  # per actor

    def run(self, todo: frozenset[int], actor: type, args: tuple, gpus: float = 0.0
            ) -> Iterator[pd.DataFrame]:
        import ray.data

        tagged = ray.data.read_parquet(self.events).map_batches(
            _tag_buckets, batch_format="pandas",
            fn_kwargs={"bounds": self.bounds, "shard": self.shard, "todo": todo})
        done = tagged.groupby(BUCKET, num_partitions=min(len(todo), 64)).map_groups(
            actor, batch_format="pandas", fn_constructor_args=args,
            compute=ray.data.ActorPoolStrategy(size=self.workers), num_cpus=self.cpus,
            num_gpus=gpus)
        yield from done.iter_batches(batch_format="pandas", batch_size=None)


def written_buckets(parts: Path) -> set[int]:
    return {int(p.stem[len("chunk-b"):]) for p in parts.glob("chunk-b*.parquet")}


def _connect(address: str | None, cpus: int | None) -> bool:
    """Join the cluster at ``address`` (or start a local one); True if this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.WARNING)
    ray.init(address=address, num_cpus=None if address else cpus, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING)
    return True


def run_ray_job(events: str | os.PathLike, out: str | os.PathLike, spec: WorkerSpec,
                config: JobConfig | None = None, *, address: str | None = None,
                workers: int = 1, cpus: int | None = None,
                progress: Callable[[int, int], Any] | None = None) -> JobSummary:
    """Profile this shard's users of a user-sorted parquet event table on Ray into ``out``.

    ``address``: a running cluster ("auto", "HOST:PORT"); None starts a local one with
    ``cpus`` CPUs (default: all). ``workers``: profiler actors (each holds a model).
    """
    import ray
    import ray.data

    config = config or JobConfig()
    if config.retry_failed:
        raise ValueError("--retry-failed runs with the local engine (rerun without --engine ray)")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    llm_stage(spec, 0.0)  # refuse a wrong --llm-stage before any work
    started = time.perf_counter()
    spec = replace(spec, precision=spec.precision or default_precision())  # one for all workers
    out = Path(out)
    source = ParquetSource(events)
    users = shard_users(source.users(), config.shard)
    record = job_record(config, users, backend=spec.backend, model=spec.model,
                        encoder=encoder_label(spec.encoder, spec.precision), engine="ray",
                        bucket_users=config.chunk_size)
    done = open_job(out, users, config, record)
    if done is None:
        return job_summary(out, len(users), len(users), 0, config, started)
    parts = parts_dir(out)
    bounds = np.asarray(users[::config.chunk_size], dtype=str)  # first user of each bucket
    todo = frozenset(range(len(bounds))) - written_buckets(parts)
    n_todo = sum(min(config.chunk_size, len(users) - b * config.chunk_size) for b in todo)
    update = progress(len(users) - n_todo, len(users)) if progress else None
    if todo:
        started_ray = _connect(address, cpus)
        try:
            ray.data.DataContext.get_current().enable_progress_bars = False
            resources = ray.cluster_resources()
            cluster_gpus = float(resources.get("GPU", 0.0))
            gpus = actor_gpus(spec, cluster_gpus, workers)  # per actor or per vLLM engine
            stage = llm_stage(spec, cluster_gpus)
            buckets = BucketPass(str(source.path), bounds, config.shard, workers,
                                 _actor_cpus(float(resources.get("CPU", 1.0)), workers))
            if stage == "ray-data-llm":
                from uscope.profile.ray_llm import profile_in_rounds

                profile_in_rounds(buckets, todo, parts, spec, config, gpus, update)
            else:
                for batch in buckets.run(todo, BucketProfiler, (spec, config.profile,
                                                                str(parts)), gpus):
                    if update is not None:
                        update(int(batch["n_users"].sum()))
        finally:
            if started_ray:
                ray.shutdown()
    merge_parts(parts, users, out)
    return job_summary(out, len(users), len(users) - n_todo, n_todo, config, started)
