"""Every benchmark in its quick mode on two registered datasets that have the fields it needs,
as a user runs it (a subprocess: ``python benchmarks/<script>.py --quick --no-write --dataset
NAME``), and the one-line refusal of data that lacks a field (``benchmarks/_data.py``).

The quick runs go two at a time (CI has two cores; each run uses one torch thread): the first
test that needs a result starts every selected run in a pool, and each test waits for its own.
None of them may touch BENCHMARKS.md, and each names its data by ``LoadedDataset.label``.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from benchmark_runs import REPO, command, run
from benchmark_runs import benchmarks_digest as digest

from uscope.data.datasets import get_spec

EXIT_LACKS_FIELD = 3
slow = pytest.mark.slow  # SmolLM2 training / constrained decoding: a minute or two each

# (script, dataset, extra options): two datasets with the script's fields each
CASES = [
    ("bench_data", "netfp", ()),
    ("bench_data", "foursquare-nyc", ()),
    ("bench_umask", "netfp", ()),
    ("bench_umask", "foursquare-nyc", ()),
    ("bench_umask_months", "foursquare-nyc", ()),   # weeks of 3-hour slots, place clusters
    ("bench_umask_months", "studentlife", ()),
    ("validate_umask_sampler", "netfp", ()),
    ("validate_umask_sampler", "simulated", ()),
    ("bench_intent", "netfp", ()),
    ("bench_intent", "foursquare-nyc", ()),        # Mobile setting: event = place
    ("bench_intent_device", "netfp", ()),
    ("bench_intent_device", "simulated", ()),
    ("bench_intent_longtail", "simulated", ()),
    ("bench_intent_longtail", "foursquare-nyc", ()),
    ("bench_recommend", "frappe", ()),              # leave-out and cold users, untimed
    ("bench_recommend", "foursquare-nyc", ()),      # later weeks, venues
    ("bench_recommend_completion", "netfp", ()),
    ("bench_recommend_completion", "simulated", ()),
    ("validate_recommend", "netfp", ()),
    ("validate_recommend", "frappe", ()),
    ("bench_llm_scoring", "netfp", ()),
    ("bench_llm_scoring", "frappe", ()),            # apps without times
    pytest.param("bench_synth", "simulated", (), marks=slow),
    pytest.param("bench_synth", "shanghai-sample", (), marks=slow),
    pytest.param("bench_synth_real", "foursquare-nyc", (), marks=slow),  # venues x hour
    pytest.param("bench_tuning", "simulated", (), marks=slow),
    pytest.param("bench_tuning", "shanghai-sample", (), marks=slow),
    # these two run netfp and Foursquare NYC side by side (no --dataset); one torch thread
    # each, as the others use by default: two runs of two threads on two cores stall
    pytest.param("bench_grounded", None, ("--threads", "1"), marks=slow),
    pytest.param("bench_faithful_dpo", None, ("--threads", "1"), marks=slow),
]
BOTH = ("netfp (real)", "foursquare-nyc (real)")


@pytest.fixture(scope="module")
def quick_runs(request, tmp_path_factory):
    """Start every selected quick run, two at a time, the slow ones first; key -> future of its
    result."""
    tmp = tmp_path_factory.mktemp("bench")
    items = [item for item in request.session.items
             if getattr(item, "originalname", "") == "test_quick_benchmark_runs_on_dataset"
             and item.module.__name__ == __name__]
    # the long runs start first, so the short ones fill the pool's end (both workers finish
    # near together)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    selected = [item.callspec.params for item in items]
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {}
    for params in selected:
        key = (params["script"], params["dataset"], params["extra"])
        if key not in futures:
            futures[key] = pool.submit(run, command(*key), tmp)
    before = digest()
    yield futures, before
    pool.shutdown(wait=True)


@pytest.mark.parametrize(("script", "dataset", "extra"), CASES)
def test_quick_benchmark_runs_on_dataset(quick_runs, script, dataset, extra):
    futures, before = quick_runs
    done = futures[(script, dataset, extra)].result()
    assert done.returncode == 0, (done.stdout[-3000:] + "\n" + done.stderr[-5000:])
    labels = BOTH if dataset is None else (
        f"{dataset} ({'real' if get_spec(dataset).real else 'SIMULATED'})",)
    for label in labels:
        assert label in done.stdout  # tables name the data by LoadedDataset.label
    assert digest() == before, "a quick run wrote BENCHMARKS.md"


def refusal(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == EXIT_LACKS_FIELD, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(("script", "dataset", "field"), [
    ("bench_synth", "foursquare-nyc", "apps"),      # app-place pairs, check-ins have no app
    ("bench_synth_real", "netfp", "places"),        # one day of apps, no place at all
    ("bench_tuning", "netfp", "place_categories"),  # its location task
    ("bench_intent", "frappe", "times"),            # context buckets, no timestamps
    ("bench_umask_months", "netfp", "coordinates"),  # its cells come from coordinates
])
def test_benchmark_refuses_a_dataset_lacking_a_field(tmp_path, script, dataset, field):
    line = refusal(run(command(script, dataset, ()), tmp_path))
    assert line == f"error: {script} needs {field}, and dataset {dataset!r} has none"


def test_benchmark_refuses_a_generic_file_without_apps(tmp_path):
    places = pd.DataFrame({"user_id": ["a", "a", "b", "b"], "location_id": ["p1", "p2", "p1",
                                                                              "p3"],
                           "timestamp": pd.date_range("2024-01-01 08:00", periods=4, freq="h")})
    places.to_parquet(tmp_path / "places.parquet")
    line = refusal(run(command("bench_llm_scoring", None, ("--events",
                                                           str(tmp_path / "places.parquet"))),
                       tmp_path))
    assert line == "error: bench_llm_scoring needs apps, and dataset 'generic:places.parquet' " \
                   "has none"


def test_readme_dataset_tables_are_current():
    """README "Datasets" is generated from the registry and the benchmarks' NEEDS."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from _data import datasets_table, readme_table
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- BEGIN datasets-table")[1].split("<!-- END datasets-table -->")[0]
    for table in (datasets_table(), readme_table()):
        assert table in block, "README is stale: paste the output of python benchmarks/_data.py"
