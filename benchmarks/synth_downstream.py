"""Downstream use of synthetic data (bench_synth): intent prediction for sparse users.

PITuning's protocol (``generative.intent.build_protocol``) on the real events of a SIMULATED
population: population users vs held-out users, earlier hours tune, later hours test. Each
held-out user is made sparse: only its first ``n_sparse`` tuning samples are kept. The
augmented variants add samples built from that user's synthetic sequences (generated from the
sparse history alone) to its tuning data; the test set is the same real later hours in every
variant, built before any synthetic event exists.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from generative.intent import (
    FirstOrderMarkov,
    IntentSamples,
    MostFrequent,
    appendix_e_features,
    build_samples,
    build_sequences,
    intent_metrics,
    lightgbm_per_user,
)
from generative.intent.protocol import ProtocolData

SAMPLE_FIELDS = [f.name for f in dataclasses.fields(IntentSamples)]


def held_out_users(data: ProtocolData) -> list[str]:
    ids = sorted(set(data.tune.user.tolist()) | set(data.test.user.tolist()))
    return [data.seqs.user_ids[k] for k in ids]


def sparse_tune(data: ProtocolData, n_sparse: int) -> IntentSamples:
    """The first ``n_sparse`` tuning samples (by time) of every held-out user."""
    keep = []
    users, positions = data.tune.user.numpy(), data.tune.position.numpy()
    for k in np.unique(users):
        rows = np.flatnonzero(users == k)
        keep += rows[np.argsort(positions[rows], kind="stable")][:n_sparse].tolist()
    return data.tune.subset(torch.tensor(sorted(keep), dtype=torch.long))


def sparse_histories(events: pd.DataFrame, data: ProtocolData, tune: IntentSamples
                     ) -> pd.DataFrame:
    """Each held-out user's real events up to the time of its last kept tuning sample."""
    stamps = (pd.to_datetime(events["timestamp"]) - pd.Timestamp(0)).dt.total_seconds()
    keep = np.zeros(len(events), dtype=bool)
    for k in np.unique(tune.user.numpy()):
        last = data.seqs.time_s[tune.position[tune.user == k].numpy()].max()
        keep |= ((events["user_id"] == data.seqs.user_ids[k]) & (stamps <= last)).to_numpy()
    return events[keep].reset_index(drop=True)


def synthetic_samples(synthetic: pd.DataFrame, data: ProtocolData):
    """(samples with protocol user indices, their sequences, samples with own indices)."""
    seqs = build_sequences(synthetic, data.data_config, data.vocab, source="synthetic events")
    own = build_samples(seqs, data.data_config)
    index = {name: k for k, name in enumerate(data.seqs.user_ids)}
    mapped = torch.tensor([index[seqs.user_ids[k]] for k in own.user.tolist()],
                          dtype=torch.long)
    return dataclasses.replace(own, user=mapped), seqs, own


def concat(first: IntentSamples, second: IntentSamples) -> IntentSamples:
    return IntentSamples(**{f: torch.cat([getattr(first, f), getattr(second, f)])
                            for f in SAMPLE_FIELDS})


def score_baselines(data: ProtocolData, tune: IntentSamples, tune_x: np.ndarray,
                    test_x: np.ndarray) -> dict[str, dict[str, float]]:
    """Most-frequent, Markov and per-user LightGBM fitted on ``tune``, scored on the test."""
    n_i = data.vocab.n_intents
    target = data.test.target.numpy()
    scores = {
        "MostFrequent": MostFrequent(n_i).fit(tune, data.population).scores(data.test),
        "Markov": FirstOrderMarkov(n_i).fit(tune, data.population).scores(data.test),
        "LightGBM": lightgbm_per_user(tune_x, tune, test_x, data.test, n_i),
    }
    return {name: intent_metrics(target, s) for name, s in scores.items()}


def features(samples: IntentSamples, seqs, data: ProtocolData) -> np.ndarray:
    return appendix_e_features(samples, seqs, data.vocab.n_intents,
                               data.data_config.slot_minutes)[0]


def variants(data: ProtocolData, sparse: IntentSamples,
             synthetic: dict[str, pd.DataFrame]) -> list[dict]:
    """Rows (variant, baseline, metrics): full real tuning, sparse real, sparse + each
    synthetic set (synthetic samples first, so LightGBM early-stops on the latest real rows)."""
    test_x = features(data.test, data.seqs, data)
    runs = {"full real tuning (reference)": (data.tune, features(data.tune, data.seqs, data)),
            "sparse real": (sparse, features(sparse, data.seqs, data))}
    for name, frame in synthetic.items():
        mapped, seqs, own = synthetic_samples(frame, data)
        runs[f"sparse real + {name}"] = (
            concat(mapped, sparse),
            np.vstack([features(own, seqs, data), runs["sparse real"][1]]))
    rows = []
    for variant, (tune, tune_x) in runs.items():
        for baseline, metrics in score_baselines(data, tune, tune_x, test_x).items():
            rows.append({"variant": variant, "tuning samples": len(tune),
                         "baseline": baseline, **metrics})
    return rows
