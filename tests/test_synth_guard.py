"""Synthetic events never enter an evaluation split, and are stored in their own files."""

from __future__ import annotations

import pandas as pd
import pytest

from uscope.data import DataError, save_events
from uscope.synth.guard import (
    SyntheticInEvaluation,
    load_synthetic,
    require_real,
    save_synthetic,
)


def _mixed(events: pd.DataFrame) -> pd.DataFrame:
    fake = events.head(3).copy()
    fake["synthetic"] = True
    return pd.concat([events, fake], ignore_index=True)


def test_require_real_names_the_split_the_row_and_the_count(simulated):
    require_real(simulated.events, "a split")  # real only: passes
    mixed = _mixed(simulated.events)
    with pytest.raises(SyntheticInEvaluation) as info:
        require_real(mixed, "novelty split")
    assert info.value.field == "synthetic"
    assert info.value.line == len(simulated.events)
    assert "3 of" in str(info.value) and "novelty split" in str(info.value)


def test_recommendation_evaluation_refuses_synthetic_events(simulated):
    from uscope.data import cutoff_time, novelty_split
    from uscope.recommend.evaluate import EvalConfig, evaluate_recommendations

    mixed = _mixed(simulated.events)
    with pytest.raises(SyntheticInEvaluation, match="novelty_split"):
        novelty_split(mixed, "app", cutoff_time(mixed, 0.6))
    for protocol in ("novelty", "coldstart"):
        with pytest.raises(SyntheticInEvaluation, match="evaluate_recommendations"):
            evaluate_recommendations(mixed, EvalConfig(protocol=protocol, seeds=(0,)))


def test_intent_protocol_refuses_synthetic_events(simulated):
    from generative.intent.data import IntentDataConfig
    from generative.intent.protocol import ProtocolConfig, build_protocol

    config = IntentDataConfig(input_length=4)
    build_protocol(simulated.events, config, ProtocolConfig(n_individual=3))  # real: fine
    with pytest.raises(SyntheticInEvaluation, match="held-out.parquet"):
        build_protocol(_mixed(simulated.events), config, ProtocolConfig(n_individual=3),
                       source="held-out.parquet")


def test_synthetic_files_hold_only_synthetic_rows(tmp_path, simulated):
    fake = simulated.events.head(5).copy()
    fake["synthetic"] = True
    path = save_synthetic(fake, tmp_path / "synthetic.parquet")
    assert load_synthetic(path)["synthetic"].all()
    with pytest.raises(DataError, match="only generated events") as info:
        save_synthetic(simulated.events.head(5), tmp_path / "bad.parquet")
    assert info.value.line == 0
    real = save_events(simulated.events.head(5), tmp_path / "real.parquet")
    with pytest.raises(ValueError, match="separate file"):
        save_synthetic(fake, real, real_path=real)
    with pytest.raises(DataError, match="real \\(synthetic=False\\) row"):
        load_synthetic(real)
