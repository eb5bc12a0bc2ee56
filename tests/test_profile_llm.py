"""pi_theta (eq. 23) as the bundled SmolLM2-135M-Instruct, embedded by MiniLM (eq. 24).

Few tests, one shared model (session fixtures ``smollm2`` and ``minilm``), short outputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uscope.data.schema import validate_events
from uscope.profile import GenerationConfig, ProfileEncoder, profile_users
from uscope.profile.backends.hf import TransformersBackend

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]


@pytest.fixture(scope="module")
def events():
    frame = pd.DataFrame({
        "user_id": ["night_gamer"] * 4 + ["commuter"] * 3,
        "timestamp": pd.to_datetime(["2024-01-01 22:00", "2024-01-01 23:00", "2024-01-02 22:30",
                                     "2024-01-02 23:30", "2024-01-01 07:30", "2024-01-01 08:00",
                                     "2024-01-02 07:40"]),
        "app": ["Arena", "Arena", "Chat", "Arena", "Maps", "News", "Maps"],
        "app_category": ["Games", "Games", "Social", "Games", "Navigation", "News", "Navigation"],
        "location_category": ["Residence"] * 4 + ["Transportation hub"] * 3,
    })
    return validate_events(frame)


def test_smollm2_writes_profiles_that_are_embedded(events, smollm2, minilm):
    backend = TransformersBackend(loaded=smollm2, label="SmolLM2-135M-Instruct",
                                  generation=GenerationConfig(max_new_tokens=24, complete_sentences=False))
    ps = profile_users(events, backend, encoder=ProfileEncoder(loaded=minilm),
                       users=["night_gamer", "commuter", "newcomer"])
    assert ps.frame["status"].tolist() == ["ok", "ok", "ok"]
    assert set(ps.frame["model"]) == {"SmolLM2-135M-Instruct"}
    for text in ps.frame["profile"]:
        assert len(text.split()) >= 5
        assert "<|im_start|>" not in text and "<|im_end|>" not in text
        assert "Facts:" not in text  # the answer, not an echo of the prompt
    emb = ps.embeddings()
    assert emb.shape == (3, 384) and np.isfinite(emb).all()
    assert ps.frame["attempts"].tolist() == [1, 1, 1]


def test_greedy_generation_is_reproducible(events, smollm2):
    from uscope.profile.backends import ProfileRequest
    from uscope.profile.population import iter_features
    from uscope.profile.prompting import load_template

    backend = TransformersBackend(loaded=smollm2, generation=GenerationConfig(max_new_tokens=8, complete_sentences=False))
    template = load_template()
    (f,) = iter_features(events, ["commuter"])
    request = ProfileRequest(f.user_id, template.render(f), f)
    first, second = backend.generate([request]), backend.generate([request])
    assert first[0].ok and first[0].text == second[0].text
