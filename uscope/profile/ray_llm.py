"""``--engine ray --backend vllm --llm-stage ray-data-llm`` (the default on a cluster with GPUs):
the vLLM engines as ``ray.data.llm`` processor stages.

Profiles are decoded in rounds, each needing the answers of the one before: a grounded profile
is decoded under its user's regex, then the users left without free text are decoded again by
sampling (``uscope.profile.grounded.write_grounded``); a free profile that fails is retried
(``generate_with_retries``). A processor sends each row through its engine once, so the job
makes two Ray Data passes a round and keeps every answer on disk in between:

1. *replay* (``BucketReplayer``, CPU actors that load the encoder once): each unfinished
   bucket is profiled by ``ReplayedVLLM``, a backend answering from the bucket's answer
   files. A bucket whose every request is answered is written as its chunk file, as the
   actor engine writes it; any other bucket writes the requests of its first unanswered call
   as its asks;
2. *answer* (``answer_asks``): a ``ray.data.llm`` vLLM processor (``workers`` engines, each
   reserving ``--tensor-parallel`` GPUs on a GPU cluster, a CPU a worker) answers every
   ask of the round; the answers are written per bucket, keyed by a hash of the model, the
   chat and the sampling settings.

Rounds repeat until every bucket has its chunk. A killed driver or worker loses at most the
answers of unfinished processor batches: a rerun replays what is on disk and asks only for
the rest; answers written twice (a retried batch) share their key, and a chunk is written
atomically once, so no user is lost or written twice. Each round starts its engines afresh,
so a round should carry many buckets.

Replay needs each round to rebuild the same prompts: a bucket's rows reach its actor in the
order Ray's shuffle gives them, and rows tied on (user, timestamp) could in principle reorder
between rounds and change a tie-broken feature; such a bucket would ask again and, failing
that, end in the round limit's error, never in a wrong row.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from uscope.profile.backends.base import AnswersPending, GenerationConfig
from uscope.profile.backends.vllm_offline import VLLMChats, VLLMConfig, engine_kwargs
from uscope.profile.batch import JobConfig
from uscope.profile.pipeline import ProfileConfig, profile_chunk
from uscope.profile.ray_engine import (
    BucketActor,
    BucketPass,
    WorkerSpec,
    bucket_file,
    bucket_requests,
    written_buckets,
)
from uscope.profile.stream import release_freed_memory

ANSWERS = "answers"  # parts/answers/bNNNNNN/*.parquet: key, text, stopped
ASKS = "asks"  # parts/asks/bNNNNNN.parquet: this round's bucket, key, messages, params
# CPUs of the light steps around the engines (chat template, tokenizers, writing answers):
# whole CPUs each would leave an engine that reserves one waiting on a small node
LIGHT_CPUS = 0.1
MIN_PROCESSOR_BATCH = 64  # rows a processor batch hands an engine at least (--batch-size if more)


def ask_key(model: str, messages: Sequence[dict], params: dict[str, Any]) -> str:
    """The identity of one chat request: model (with its adapter), messages, sampling."""
    blob = json.dumps([model, list(messages), params], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def answers_dir(parts: Path, bucket: int) -> Path:
    return parts / ANSWERS / f"b{bucket:06d}"


def write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def read_answers(folder: Path) -> dict[str, tuple[str, bool]]:
    """A bucket's answers by key (a key answered twice keeps its first file's answer)."""
    answers: dict[str, tuple[str, bool]] = {}
    for file in sorted(folder.glob("*.parquet")):
        table = pq.read_table(file).to_pydict()
        for key, text, stopped in zip(table["key"], table["text"], table["stopped"]):
            answers.setdefault(key, (text, bool(stopped)))
    return answers


class ReplayedVLLM(VLLMChats):
    """pi_theta (eq. 23) answered from disk: a call whose chats all have answers gets them;
    any other raises ``AnswersPending`` listing (key, messages, params) of the missing ones."""

    def __init__(self, config: VLLMConfig, generation: GenerationConfig,
                 answers: dict[str, tuple[str, bool]]):
        super().__init__(config, generation)
        self.answers = answers

    def chat(self, conversations: Sequence[list[dict]], params: Sequence[dict[str, Any]]
             ) -> list[tuple[str | None, bool]]:
        keys = [ask_key(self.model, c, p) for c, p in zip(conversations, params)]
        missing = {k: (c, p) for k, c, p in zip(keys, conversations, params)
                   if k not in self.answers}
        if missing:
            raise AnswersPending([(k, c, p) for k, (c, p) in missing.items()])
        return [self.answers[k] for k in keys]


def vllm_config(spec: WorkerSpec) -> VLLMConfig:
    return VLLMConfig(model=spec.model, **spec.backend_options)


class BucketReplayer(BucketActor):
    """A Ray actor: replays a bucket with its answers; writes its chunk when every request is
    answered, else its asks."""

    def __init__(self, spec: WorkerSpec, profile: ProfileConfig, parts: str):
        super().__init__(spec, replace(profile, backoff_s=0.0), parts)  # replays need no wait
        self.vllm = vllm_config(spec)
        self.generation = spec.generation

    def __call__(self, group: pd.DataFrame) -> pd.DataFrame:
        bucket, users, requests = bucket_requests(group, self.template, self.profile.features)
        backend = ReplayedVLLM(self.vllm, self.generation,
                               read_answers(answers_dir(self.parts, bucket)))
        # the whole bucket in one call: every user waits on the same round
        config = replace(self.profile, batch_size=max(1, len(requests)))
        try:
            chunk = profile_chunk(requests, backend, self.encoder, self.template, config)
        except AnswersPending as pending:
            keys, chats, params = zip(*pending.asks)
            write_atomic(pa.table({
                "bucket": [bucket] * len(keys), "key": list(keys),
                "messages": [json.dumps(c, ensure_ascii=False) for c in chats],
                "params": [json.dumps(p) for p in params]}),
                self.parts / ASKS / f"b{bucket:06d}.parquet")
            return pd.DataFrame({"bucket": [bucket], "asks": [len(keys)], "n_users": [0]})
        chunk.save(bucket_file(self.parts, bucket))  # atomic; a retry rewrites the same file
        del requests, chunk
        release_freed_memory()
        return pd.DataFrame({"bucket": [bucket], "asks": [0], "n_users": [len(users)]})


def _request_row(row: dict[str, Any], adapter: str | None) -> dict[str, Any]:
    """An ask as a ``ray.data.llm`` row; ``model`` names the LoRA adapter (a folder)."""
    params = json.loads(row["params"])
    request = {"bucket": row["bucket"], "key": row["key"], "budget": params["max_tokens"],
               "messages": json.loads(row["messages"]), "sampling_params": params}
    if adapter is not None:
        request["model"] = adapter
    return request


def _answer_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"bucket": int(row["bucket"]), "key": row["key"], "text": row["generated_text"],
            "stopped": int(row["num_generated_tokens"]) < int(row["budget"])}


def _write_answers(batch: pd.DataFrame, parts: str) -> pd.DataFrame:
    """One answer file per bucket in the batch (atomic, a fresh name: never overwrites)."""
    for bucket, rows in batch.groupby("bucket"):
        write_atomic(pa.Table.from_pandas(rows[["key", "text", "stopped"]], preserve_index=False),
                     answers_dir(Path(parts), int(bucket)) / f"{uuid.uuid4().hex}.parquet")
    return pd.DataFrame({"answers": [len(batch)]})


def engine_placement(gpus: float, tensor_parallel: int) -> dict[str, Any]:
    """Resources of each tensor-parallel worker of one vLLM engine: a CPU, and the engine's
    ``gpus`` shared out (none for vLLM's CPU build)."""
    gpu = {"GPU": gpus / tensor_parallel} if gpus > 0 else {}
    return {"bundle_per_worker": {"CPU": 1, **gpu}}


def processor_config(spec: WorkerSpec, workers: int, batch_size: int, gpus: float) -> Any:
    """The ``ray.data.llm`` vLLM processor: ``workers`` engines built from the backend's
    ``engine_kwargs``; ``gpus`` per engine (one CPU per engine when 0: vLLM's CPU build)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    vllm = vllm_config(spec)
    kwargs = engine_kwargs(vllm)
    model = kwargs.pop("model")
    light = {"enabled": True, "num_cpus": LIGHT_CPUS}  # chat template, (de)tokenizer stages
    return vLLMEngineProcessorConfig(
        model_source=model, engine_kwargs=kwargs, concurrency=workers, batch_size=batch_size,
        placement_group_config=engine_placement(gpus, vllm.tensor_parallel_size),
        log_engine_metrics=False,  # needs Ray Serve's extras and a metrics port
        chat_template_stage=light, tokenize_stage=light, detokenize_stage=light)


def answer_asks(parts: Path, *, spec: WorkerSpec, workers: int, batch_size: int,
                gpus: float) -> int:
    """Answer every ask on disk with a ``ray.data.llm`` processor; returns how many."""
    import ray.data
    from ray.data.llm import build_processor

    processor = build_processor(
        processor_config(spec, workers, batch_size, gpus),
        preprocess=partial(_request_row, adapter=spec.backend_options.get("lora_path")),
        postprocess=_answer_row, preprocess_map_kwargs={"num_cpus": LIGHT_CPUS},
        postprocess_map_kwargs={"num_cpus": LIGHT_CPUS})
    # read before the engines start: Ray Data's file listing takes a whole CPU, which a small
    # node has no more once the processor's actors hold theirs
    asks = ray.data.read_parquet(str(parts / ASKS)).materialize()
    written = processor(asks).map_batches(_write_answers, batch_format="pandas",
                                          fn_kwargs={"parts": str(parts)}, num_cpus=LIGHT_CPUS)
    return sum(int(b["answers"].sum()) for b in written.iter_batches(batch_format="pandas",
                                                                      batch_size=None))


def profile_in_rounds(buckets: BucketPass, todo: frozenset[int], parts: Path, spec: WorkerSpec,
                      config: JobConfig, gpus: float,
                      update: Callable[[int], Any] | None = None,
                      answer: Callable[[Path], Any] | None = None) -> int:
    """Replay and answer until every bucket of ``todo`` has its chunk file; returns the rounds
    of answers it took. ``answer(parts)`` answers the asks on disk (default: ``answer_asks``
    with ``workers`` engines). At most ``retries + 2`` rounds of answers: a grounded profile
    needs at most 2 (the sampled re-decode), a free one at most 1 + ``retries``."""
    answer = answer or partial(answer_asks, spec=spec, workers=buckets.workers, gpus=gpus,
                               batch_size=max(config.profile.batch_size, MIN_PROCESSOR_BATCH))
    limit, answered = config.profile.retries + 2, 0
    for _ in range(limit + 1):
        todo = todo - written_buckets(parts)
        if not todo:
            return answered
        shutil.rmtree(parts / ASKS, ignore_errors=True)
        n_asks = 0
        for batch in buckets.run(todo, BucketReplayer, (spec, config.profile, str(parts))):
            n_asks += int(batch["asks"].sum())
            if update is not None:
                update(int(batch["n_users"].sum()))
        if n_asks and answered < limit:
            answer(parts)
            answered += 1
    left = todo - written_buckets(parts)
    if left:
        raise RuntimeError(f"{len(left)} buckets still ask for answers after {limit} rounds "
                           f"of answers (first: bucket {min(left)})")
    return limit
