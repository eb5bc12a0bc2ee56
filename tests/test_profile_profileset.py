"""ProfileSet: the public output of U-SCOPE (prompt, profile y_u, embedding of eq. 24)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import uscope
from uscope.data.schema import DataError, validate_events
from uscope.profile import ProfileEncoder, ProfileSet, profile_users

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def encoder(minilm):
    return ProfileEncoder(loaded=minilm)


@pytest.fixture(scope="module")
def small_events():
    frame = pd.DataFrame({
        "user_id": ["a", "a", "b", "c", "c", "c"],
        "timestamp": pd.to_datetime(["2024-01-01 08:00", "2024-01-01 20:00", "2024-01-02 09:00",
                                     "2024-01-01 12:00", "2024-01-02 12:00", "2024-01-03 12:00"]),
        "app": ["Chat", "Game", "app_5", "Maps", "Maps", "Shop"],
        "app_category": ["Social", "Games", "Unknown", "Navigation", "Navigation", "Shopping"],
        "location_category": ["Home", "Home", None, "Mall", "Mall", "Mall"],
    })
    return validate_events(frame)


def test_profile_users_api_round_trips_through_parquet(small_events, encoder, tmp_path):
    ps = uscope.profile_users(small_events, backend="heuristic", encoder=encoder,
                              users=["a", "b", "c", "newcomer"])
    assert ps.user_ids == ["a", "b", "c", "newcomer"]
    assert set(ps.frame["backend"]) == {"heuristic"} and set(ps.frame["encoder"]) == \
        {encoder.label} and encoder.label in ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2@bf16")
    assert ps.frame["template_version"].str.startswith("grounded_v1@").all()  # the default
    assert ps.frame.loc[3, "n_events"] == 0 and "cold start" in ps.profile_of("newcomer")
    emb = ps.embeddings()
    assert emb.shape == (4, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # MiniLM normalises
    np.testing.assert_allclose(emb, encoder.encode(ps.frame["profile"].tolist()), atol=1e-6)
    path = ps.save(tmp_path / "sub" / "profiles.parquet")
    assert [p.name for p in path.parent.iterdir()] == ["profiles.parquet"]  # no temp file left
    back = ProfileSet.load(path)
    pd.testing.assert_frame_equal(back.frame.drop(columns="embedding"),
                                  ps.frame.drop(columns="embedding"))
    np.testing.assert_array_equal(back.embeddings(), emb)


def test_failed_rows_survive_save_and_load(small_events, encoder, tmp_path):
    ps = profile_users(small_events, "heuristic", encoder=encoder)
    frame = ps.frame.copy()
    frame.loc[1, ["status", "error", "profile", "embedding"]] = ["failed", "timed out", None, None]
    broken = ProfileSet(frame)
    back = ProfileSet.load(broken.save(tmp_path / "p.parquet"))
    assert back.failures.to_dict("records") == [{"user_id": "b", "error": "timed out"}]
    emb = back.embeddings()
    assert np.isnan(emb[1]).all() and not np.isnan(emb[[0, 2]]).any()
    assert len(back.ok) == 2 and "1 failed" in back.summary()
    both = ProfileSet.concat([back.ok, ProfileSet.empty(), back])
    assert len(both) == 5


def test_bad_profile_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError):
        ProfileSet.load(tmp_path / "missing.parquet")
    pd.DataFrame({"user_id": ["x"]}).to_parquet(tmp_path / "events.parquet")
    with pytest.raises(DataError, match="events.parquet.*lacks columns"):
        ProfileSet.load(tmp_path / "events.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="junk.parquet"):
        ProfileSet.load(tmp_path / "junk.parquet")


def test_empty_event_table_is_an_error_unless_users_are_named(small_events, encoder):
    empty = small_events.iloc[0:0]
    with pytest.raises(DataError, match="no rows"):
        profile_users(empty, "heuristic", encoder=encoder)
    ps = profile_users(empty, "heuristic", encoder=encoder, users=["x"])
    assert ps.frame.loc[0, "status"] == "ok" and ps.frame.loc[0, "n_events"] == 0
    with pytest.raises(ValueError, match="more than once"):
        profile_users(small_events, "heuristic", encoder=encoder, users=["a", "a"])
    with pytest.raises(ValueError, match="unknown backend"):
        profile_users(small_events, "gpt-17", encoder=encoder)
