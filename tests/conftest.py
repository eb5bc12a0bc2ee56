"""Shared fixtures. Real data lives in ../shared/data (relative to the repo root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TSINGHUA = SHARED_DATA / "tsinghua"
NETFP_CSV = SHARED_DATA / "netfp" / "data0117_dev.csv"


def pytest_collection_modifyitems(config, items):
    """Skip tests whose hardware or extras are missing, saying why."""
    import importlib.util

    has_vllm = importlib.util.find_spec("vllm") is not None
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_gpu = False
    for item in items:
        if "vllm" in item.keywords and not has_vllm:
            item.add_marker(pytest.mark.skip(reason="vLLM is not installed here; `make test` runs "
                                                   "these in the venv of `make vllm-env`"))
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="no CUDA device on this machine"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"real data directory {SHARED_DATA} is missing (expected ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def netfp_events(shared_data):
    from uscope.data import read_netfp

    events, report = read_netfp(NETFP_CSV)
    return events, report


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """A small SIMULATED population shared by tests (never real data)."""
    from uscope.data import simulate

    return simulate(n_users=14, days=3, seed=7, out_dir=tmp_path_factory.mktemp("sim"))


@pytest.fixture(scope="session")
def smollm2():
    """The bundled SmolLM2-135M-Instruct as (model, tokenizer), loaded once per session."""
    from uscope.models import load_instruct_lm

    return load_instruct_lm()


@pytest.fixture(scope="session")
def minilm():
    """The bundled all-MiniLM-L6-v2 SentenceTransformer, loaded once per session."""
    from uscope.models import load_sentence_encoder

    return load_sentence_encoder()


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's model code on one torch thread, restoring the setting afterwards.

    The CPU is shared: with more busy threads than cores, two OpenMP threads can be tens of
    times slower than one (measured for SmolLM2 generation on the 2-core dev machine).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
