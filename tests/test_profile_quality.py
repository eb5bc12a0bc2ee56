"""Quality measures used by the profiling benchmark: faithfulness and neighbour lift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uscope.data.schema import validate_events
from uscope.profile.backends.heuristic import heuristic_profile
from uscope.profile.population import iter_features
from uscope.profile.quality import category_usage, faithfulness, mentions, neighbour_lift

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    cats = ["Games", "Social", "News", "Video"]
    rows = []
    for u in range(30):
        main = cats[u % 4]  # four groups of users with one dominant category each
        for t in range(8):
            cat = main if t < 6 else cats[int(rng.integers(4))]
            rows.append((f"u{u}", pd.Timestamp("2024-01-01") + pd.Timedelta(hours=int(t * 3)),
                         f"{cat}App", cat, ["Home", "Office"][u % 2]))
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "app", "app_category",
                                        "location_category"])
    events = validate_events(frame)
    return list(iter_features(events, sorted(events["user_id"].unique())))


def test_heuristic_profiles_are_fully_faithful_and_empty_ones_are_not(features):
    result = faithfulness([heuristic_profile(f) for f in features], features)
    assert result.n_users == 30 and result.top1_category == 1.0
    assert result.top3_categories == 1.0 and result.top1_place == 1.0
    empty = faithfulness([""] * len(features), features)
    assert empty.top1_category == 0.0 and empty.top1_place == 0.0
    assert mentions("Plays GAMES", ["games", "news"]) == [True, False]
    with pytest.raises(ValueError):
        faithfulness(["x"], features)


def test_neighbour_lift_separates_informative_from_random_embeddings(features):
    usage, names = category_usage(features)
    assert usage.shape == (30, len(names)) and np.allclose(usage.sum(axis=1), 1.0)
    informative = neighbour_lift(usage, usage, k=3)
    assert informative.lift > 1.5  # neighbours by usage itself share usage
    noise = np.random.default_rng(1).normal(size=(30, 16))
    uninformative = neighbour_lift(noise, usage, k=3)
    assert uninformative.lift < informative.lift
    assert 0.5 < uninformative.lift < 1.5
    with pytest.raises(ValueError):
        neighbour_lift(usage[:3], usage[:3], k=3)


def test_gibbs_energy_prefers_profiles_consistent_with_the_history(features, minilm):
    from uscope.profile.encoder import ProfileEncoder
    from uscope.profile.energy import gibbs_posterior, profile_energy

    encoder = ProfileEncoder(loaded=minilm)
    gamer = next(f for f in features if f.top_categories[0][0] == "Games")
    reader = next(f for f in features if f.top_categories[0][0] == "News")
    candidates = [heuristic_profile(gamer), heuristic_profile(reader),
                  "Unknown user who bakes bread and gardens on Sundays."]
    energy = profile_energy(gamer, candidates, encoder)
    assert energy.shape == (3,) and energy[0] == pytest.approx(0.0, abs=1e-5)  # eq. 22: E >= 0
    assert energy[0] < energy[1] < energy[2]
    p = gibbs_posterior(energy)
    assert p.sum() == pytest.approx(1.0) and np.argmax(p) == 0
    assert np.all(np.diff(p) < 0)  # lower energy, higher posterior
    hot = gibbs_posterior(energy, temperature=100.0)
    assert np.allclose(hot, 1 / 3, atol=0.01)  # high temperature: nearly uniform
    with pytest.raises(ValueError):
        gibbs_posterior(energy, temperature=0.0)
