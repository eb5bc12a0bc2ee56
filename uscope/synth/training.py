"""Training data of the sequence LM of eq. 25: real app-location sequences conditioned on P_u.

One example is (prompt, completion): the prompt is the profile header that generation also
uses (``prompt_header``), the completion a run of consecutive real events of the user as lines
(``format_sequence``). Fine-tuning by next-token prediction on the completion (TRL SFT,
``recipes/synth_lm.py``) teaches p(a_t, l_t | P_u, tau_t) in exactly the text the constrained
decoder later completes. Only real events are used (``require_real``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uscope.synth.generate import profile_text
from uscope.synth.pairs import synthesis_input
from uscope.synth.serialise import format_sequence, prompt_header, timed_pairs


@dataclass(frozen=True)
class SFTDataConfig:
    events_per_example: int = 24         # lines per completion
    max_examples_per_user: int | None = 8  # None: every chunk of every user
    seed: int = 0

    def __post_init__(self) -> None:
        if self.events_per_example < 1:
            raise ValueError(f"events_per_example must be >= 1, got {self.events_per_example}")
        if self.max_examples_per_user is not None and self.max_examples_per_user < 1:
            raise ValueError("max_examples_per_user must be >= 1 or None")


def sft_examples(events: pd.DataFrame, profiles: Any, config: SFTDataConfig | None = None,
                 users: Sequence[str] | None = None, source: str = "events"
                 ) -> list[dict[str, str]]:
    """(prompt, completion, user_id) records: chunks of consecutive real events per user.

    A user's history is cut into consecutive chunks of ``events_per_example`` events (a shorter
    last chunk is kept); at most ``max_examples_per_user`` chunks are drawn, without
    replacement, with a generator seeded by ``config.seed``.
    """
    config = config or SFTDataConfig()
    events, slices = synthesis_input(events, source, "synthesis LM training data")
    if users is None:
        users = list(profiles) if isinstance(profiles, Mapping) else profiles.ok.user_ids
    rng = np.random.default_rng(config.seed)
    records = []
    for user in users:
        if user not in slices:
            continue
        lines = timed_pairs(events.iloc[slices[user]])
        size = config.events_per_example
        chunks = [lines[i:i + size] for i in range(0, len(lines), size)]
        if config.max_examples_per_user is not None and len(chunks) > config.max_examples_per_user:
            keep = np.sort(rng.choice(len(chunks), config.max_examples_per_user, replace=False))
            chunks = [chunks[i] for i in keep]
        header = prompt_header(profile_text(profiles, user))
        records += [{"prompt": header, "completion": format_sequence(c), "user_id": user}
                    for c in chunks]
    if not records:
        raise ValueError(f"no training example: none of {len(users)} users has events in "
                         f"{source}")
    return records


def sft_dataset(events: pd.DataFrame, profiles: Any, config: SFTDataConfig | None = None,
                users: Sequence[str] | None = None, source: str = "events") -> Any:
    """``datasets.Dataset`` with prompt / completion columns (TRL's prompt-completion format)."""
    from datasets import Dataset

    records = sft_examples(events, profiles, config, users, source)
    return Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]}
                              for r in records])


def load_training_inputs(events: str | os.PathLike, profiles: str | os.PathLike | None = None,
                         profile_backend: str = "heuristic") -> tuple[pd.DataFrame, Any]:
    """Events (parquet table or Tsinghua-format folder) and their profiles (a saved
    ``ProfileSet``, or written now with ``profile_backend`` when no file is given)."""
    from uscope.data import load_events, read_tsinghua
    from uscope.profile import ProfileSet, profile_users

    path = Path(events)
    table = read_tsinghua(path).events if path.is_dir() else load_events(path)
    if profiles is not None:
        return table, ProfileSet.load(profiles)
    return table, profile_users(table, backend=profile_backend)
