"""The evaluation protocol: population users vs held-out users, earlier vs later periods.

Population = most users (cloud-side tuning and distillation); individual = ``n_individual``
held-out users whose earlier periods (hours, days or weeks) tune their adapter and whose later
periods are the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from generative.intent.data import (
    IntentDataConfig,
    IntentSamples,
    IntentSequences,
    IntentVocab,
    build_samples,
    build_sequences,
    split_earlier_later,
    split_users,
)
from generative.intent.losses import intent_distribution
from uscope.synth.guard import require_real


@dataclass
class ProtocolConfig:
    n_individual: int = 200      # held-out users for individual-level tuning
    tune_fraction: float = 0.5   # share of each held-out user's periods used for tuning
    split_unit: str = "hour"     # the period of the earlier/later split (data.SPLIT_UNITS)
    seed: int = 0
    fold: int = 0                # which disjoint block of held-out users (cross-validation)


@dataclass
class ProtocolData:
    data_config: IntentDataConfig
    vocab: IntentVocab
    seqs: IntentSequences
    population: IntentSamples    # all windows of population users
    tune: IntentSamples          # held-out users, earlier hours
    test: IntentSamples          # held-out users, later hours

    @property
    def p_pop(self) -> torch.Tensor:
        """P_pop of eq. 9: intent shares of the population data."""
        return intent_distribution(self.population.target, self.vocab.n_intents)

    def summary(self) -> dict:
        return {"users": len(self.seqs.user_ids), "behaviours": len(self.seqs.event),
                "events": len(self.vocab.events), "intents": self.vocab.n_intents,
                "population_samples": len(self.population),
                "population_users": int(torch.unique(self.population.user).numel()),
                "tune_samples": len(self.tune),
                "test_samples": len(self.test),
                "held_out_users": int(torch.unique(self.test.user).numel())}


def build_protocol(events: pd.DataFrame, data_config: IntentDataConfig,
                   config: ProtocolConfig, vocab: IntentVocab | None = None,
                   source: str = "events") -> ProtocolData:
    """Sequences, the user split and the earlier/later split of ``events``.

    The vocabulary (the label space: events, intents, locations) is fitted on the whole table
    unless given; no statistic of the held-out users enters any population-side fit.
    """
    require_real(events, source)  # synthetic events never enter an evaluation split
    vocab = vocab or IntentVocab.fit(events, data_config)
    seqs = build_sequences(events, data_config, vocab, source=source)
    population_users, individual_users = split_users(len(seqs.user_ids), config.n_individual,
                                                     config.seed, config.fold)
    individual = build_samples(seqs, data_config, individual_users)
    tune, test = split_earlier_later(individual, seqs, config.tune_fraction, config.split_unit)
    return ProtocolData(data_config, vocab, seqs, build_samples(seqs, data_config,
                                                                population_users), tune, test)


def validation_protocol(data: ProtocolData, n_valid: int = 100, seed: int = 1,
                        tune_fraction: float = 0.5, split_unit: str = "hour") -> ProtocolData:
    """A validation copy of the protocol drawn from the population devices only.

    ``n_valid`` population devices leave the population and play the held-out role (their
    earlier periods tune, their later periods validate); the real held-out devices' windows are
    not used at all. Hyper-parameters are chosen on this split, never on ``data.test``.
    """
    users = torch.unique(data.population.user)
    if not 0 < n_valid < len(users):
        raise ValueError(f"n_valid must be in 1..{len(users) - 1}, got {n_valid}")
    order = torch.randperm(len(users), generator=torch.Generator().manual_seed(seed))
    valid = torch.isin(data.population.user, users[order[:n_valid]])
    tune, test = split_earlier_later(data.population.subset(valid), data.seqs, tune_fraction,
                                     split_unit)
    return ProtocolData(data.data_config, data.vocab, data.seqs, data.population.subset(~valid),
                        tune, test)

