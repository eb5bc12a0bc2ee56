"""The long-horizon layout of benchmarks/bench_umask_months.py on real Foursquare check-ins:
weeks of slots from a Monday, place-cluster cells, tasks in days and weeks, RQ4 noise."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from generative.tasks import target_window
from uscope.data import load_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from umask_data import Horizon, months_data, noise_embedding


def test_tasks_are_a_day_two_weeks_and_a_few_days_of_evidence():
    layout = Horizon(weeks=8, slot_hours=3, grid=(3, 3), cold_days=3.0)
    short, long, cold = layout.tasks()
    assert layout.n_slots == 8 * 7 * 8
    assert short.horizon == 8 and long.horizon == cold.horizon == 2 * 7 * 8
    assert target_window(long, layout.n_slots).sum() == 2 * 7 * 8
    with pytest.raises(ValueError, match="divide a day"):
        Horizon(slot_hours=5)
    # the cold-start budget is a share of all T*H*W coordinates: 3 days of slots in 9 cells
    revealed = cold.init_ratio * layout.n_slots * 9
    assert revealed == pytest.approx(3 * 8 * 9)
    assert cold.cold and cold.max_ratio > cold.init_ratio


def test_noise_embedding_keeps_the_moments_not_the_users():
    rng = np.random.default_rng(0)
    h = rng.normal(2.0, 0.5, (400, 16)).astype(np.float32)
    noise = noise_embedding(h, seed=0)
    assert np.allclose(noise.mean(0), h.mean(0), atol=0.1)
    assert np.allclose(noise.std(0), h.std(0), atol=0.1)
    assert abs(np.corrcoef(noise[:, 0], h[:, 0])[0, 1]) < 0.2
    assert not np.array_equal(noise, noise_embedding(h, seed=1))


@pytest.mark.slow
def test_foursquare_months_start_on_a_monday_and_keep_users_with_enough_weeks():
    data = load_dataset("foursquare-nyc")
    layout = Horizon(weeks=12, slot_hours=3, grid=(2, 2))
    bench = months_data(data, layout, embedding="standin")
    weeks = (data.events.groupby("user_id")["timestamp"].max()
             - pd.Timestamp("2012-04-02")).dt.days // 7 + 1
    assert bench.values.shape == ((weeks >= 12).sum(), 11, 12 * 56, 2, 2)
    assert f"{(weeks < 12).sum()} users with fewer than 12 weeks left out" in bench.name
    assert bench.season == 56 and bench.observed.all()
    # the visit channels of week 0, Monday 00:00-03:00 hold that slot's check-ins exactly
    first = data.events[(data.events["timestamp"] < pd.Timestamp("2012-04-02 03:00"))
                        & data.events["user_id"].isin(weeks.index[weeks >= 12])]
    assert (bench.values[:, :10, 0] > 0).any(axis=(1, 2, 3)).sum() == first["user_id"].nunique()
