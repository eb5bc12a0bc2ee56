"""``--engine ray``: the batch job on a real local Ray cluster (2 CPUs, started and stopped
here). Same rows as the local job; SIGKILL of the driver or of a profiler actor at random
points loses and duplicates no user."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.test_profile_batch import population
from uscope.data.schema import save_events
from uscope.profile import JobConfig, ProfileEncoder, ProfileSet, make_backend, run_profile_job
from uscope.profile.batch import parts_dir

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
SAME = ["user_id", "status", "error", "prompt", "profile", "n_events", "n_used", "truncated",
        "backend", "model", "template_version", "encoder"]
TRIALS = int(os.environ.get("USCOPE_KILL_TRIALS", "10"))
# Ray 2.5x clusters authenticate with a token (~/.ray/auth_token): drivers that join one
# must say so, as on a real cluster.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray head with 2 CPUs, as `ray start` would run it on a real node."""
    port = _free_port()
    env = {**os.environ, **RAY_ENV}
    # a fresh machine has no token yet: create it (kept if one exists), as an operator would
    subprocess.run([str(RAY), "get-auth-token", "--generate"], check=True, capture_output=True,
                   env=env, timeout=120)
    subprocess.run([str(RAY), "start", "--head", "--num-cpus=2", f"--port={port}",
                    "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True, env=env, timeout=180)
    yield f"127.0.0.1:{port}"
    subprocess.run([str(RAY), "stop", "--force"], check=False, capture_output=True, env=env,
                   timeout=120)


@pytest.fixture(scope="module")
def events_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray_events")
    events = population(160, seed=11)  # 40 buckets of 4 users
    return events, save_events(events, folder / "events.parquet")


def _cli(events: Path, out: Path, address: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "uscope", "profile", str(events), "--out", str(out),
         "--backend", "heuristic", "--engine", "ray", "--address", address, "--workers", "2",
         "--chunk-size", "4", "--no-progress", "--threads", "1", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **RAY_ENV})


def _chunks(out: Path) -> pd.DataFrame:
    files = sorted(parts_dir(out).glob("chunk-*.parquet"))
    if not files:
        return pd.DataFrame(columns=["user_id", "created_at"])
    return pd.concat([ProfileSet.load(f).frame for f in files])


def _chunk_files(out: Path) -> list[Path]:
    return list(parts_dir(out).glob("chunk-*.parquet"))


def _wait_for_chunks(run: subprocess.Popen, out: Path, n_chunks: int) -> None:
    """Until ``n_chunks`` bucket files exist (a random point of the job) or the run ends."""
    deadline = time.monotonic() + 240
    while len(_chunk_files(out)) < n_chunks and run.poll() is None:
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)


def _finish(events: Path, out: Path, address: str) -> ProfileSet:
    run = _cli(events, out, address, "--resume")
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr[-3000:]
    assert "failed: 0" in stdout
    return ProfileSet.load(out)


def _assert_everyone_once(result: ProfileSet, events: pd.DataFrame) -> None:
    ids = result.user_ids
    assert len(ids) == len(set(ids)), "a user was written twice"
    assert sorted(ids) == sorted(events["user_id"].unique()), "a user was lost"


def test_ray_job_writes_the_rows_of_the_local_job(tmp_path, events_file, minilm):
    from uscope.profile.ray_engine import WorkerSpec, run_ray_job

    events, path = events_file
    config = JobConfig(chunk_size=16)
    run_profile_job(path, tmp_path / "local.parquet", make_backend("heuristic"),
                    ProfileEncoder(loaded=minilm), config)
    summary = run_ray_job(path, tmp_path / "ray.parquet", WorkerSpec(), config, workers=2,
                          cpus=2)
    assert summary.n_profiled == summary.n_users == events["user_id"].nunique()
    local = ProfileSet.load(tmp_path / "local.parquet").frame
    on_ray = ProfileSet.load(tmp_path / "ray.parquet").frame
    pd.testing.assert_frame_equal(local[SAME], on_ray[SAME])
    assert all((a == b).all() for a, b in zip(local["embedding"], on_ray["embedding"]))
    assert not ray.is_initialized(), "the job stops the local cluster it started"


def test_sigkill_of_the_driver_loses_and_duplicates_nobody(tmp_path, cluster, events_file):
    events, path = events_file
    out = tmp_path / "profiles.parquet"
    rng = random.Random(0)
    kept = pd.Series(dtype=object)
    mid_way = 0  # kills that left some buckets written and some not
    for _ in range(TRIALS):  # each trial: a driver killed at a random point, then resumed
        run = _cli(path, out, cluster, *(["--resume"] if parts_dir(out).exists() else []))
        _wait_for_chunks(run, out, len(_chunk_files(out)) + rng.randint(1, 3))
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
        if out.exists():
            break
        chunks = _chunks(out).set_index("user_id")["created_at"]
        assert chunks.index.is_unique
        assert (chunks.loc[kept.index] == kept).all(), "a finished bucket was redone"
        mid_way += len(kept) < len(chunks) < events["user_id"].nunique()
        kept = chunks
    print(f"driver kills mid-way: {mid_way} of {TRIALS}")
    assert mid_way >= 1, "no kill landed while buckets were being written"
    result = _finish(path, out, cluster)
    _assert_everyone_once(result, events)
    final = result.frame.set_index("user_id")["created_at"]
    assert (final.loc[kept.index] == kept).all()


def _profiler_workers() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        command = " ".join(proc.info["cmdline"] or [])
        if "BucketProfiler" in command:
            found.append(proc)
    return found


def test_sigkill_of_a_profiler_actor_loses_and_duplicates_nobody(tmp_path, cluster,
                                                                events_file):
    events, path = events_file
    out = tmp_path / "profiles.parquet"
    rng = random.Random(1)
    run = _cli(path, out, cluster)
    kills = 0
    while kills < TRIALS and run.poll() is None:
        _wait_for_chunks(run, out, len(_chunk_files(out)) + rng.randint(1, 2))
        workers = _profiler_workers()
        if workers and run.poll() is None:
            rng.choice(workers).send_signal(signal.SIGKILL)
            kills += 1
    run.communicate(timeout=600)
    print(f"actor kills: {kills}; the job {'finished' if run.returncode == 0 else 'failed'}")
    assert kills >= 1, "the job ended before any actor could be killed"
    if run.returncode != 0:  # Ray gave up on the killed actors: a rerun resumes
        result = _finish(path, out, cluster)
    else:
        result = ProfileSet.load(out)
    _assert_everyone_once(result, events)


def test_actors_reserve_gpus_for_vllm_only_where_the_cluster_has_them():
    from uscope.profile.ray_engine import WorkerSpec, actor_gpus

    vllm_tp2 = WorkerSpec(backend="vllm", backend_options={"tensor_parallel_size": 2})
    assert actor_gpus(vllm_tp2, cluster_gpus=8, workers=4) == 2  # an engine per actor
    assert actor_gpus(WorkerSpec(backend="vllm"), cluster_gpus=8) == 1
    assert actor_gpus(vllm_tp2, cluster_gpus=0) == 0  # vLLM's CPU build
    assert actor_gpus(WorkerSpec(backend="transformers"), cluster_gpus=8) == 0
    assert actor_gpus(WorkerSpec(backend="transformers", gpus=0.5), cluster_gpus=1,
                      workers=2) == 0.5
    with pytest.raises(ValueError, match=r"--workers 3 x 2 GPUs each \(--tensor-parallel\) "
                                         r"need 6 GPUs but the cluster has 4"):
        actor_gpus(vllm_tp2, cluster_gpus=4, workers=3)
    with pytest.raises(ValueError, match=r"\(--gpus-per-worker\) need 2 GPUs but the cluster "
                                         r"has 1"):
        actor_gpus(WorkerSpec(backend="vllm", gpus=2), cluster_gpus=1)
    with pytest.raises(ValueError, match="--gpus-per-worker must be >= 0"):
        actor_gpus(WorkerSpec(gpus=-1), cluster_gpus=1)
