"""Fine-tuning data and helpers for the recipes (seed paper 000, Sec. 5.3 eq. 27 and Sec. 7.5).

- ``tasks``: recommendation cases per training user (novel app, location, intent) with ground
  truth from the novelty split, and the held-out user split;
- ``llm_task``: the candidate shortlist and the user message (``prompts/recommend_v1.j2``)
  shared by those cases and the ``llm`` strategy of ``uscope.recommend`` at inference;
- ``cot``: teacher prompts (``prompts/cot_v1.j2``), answer parsing, rejection sampling and
  answer-hinted rationalisation into a ``messages`` dataset; ``teacher``: a prefilled local
  transformers teacher;
- ``preferences``: the stated consistency score c(y | H_u) and DPO triplets (x, y_w, y_l);
- ``objective``: eq. 27 computed on a model, to check a trained adapter;
- ``formats``: the two dataset formats and their validation; ``joblog``: resumable jobs;
- ``training``: what ``recipes/sft.py`` and ``recipes/dpo.py`` share (imports TRL).
"""

from uscope.tuning.formats import (
    MESSAGES_FORMAT,
    PREFERENCE_FORMAT,
    load_preference_dataset,
    load_sft_dataset,
    validate_messages,
    validate_preferences,
)
from uscope.tuning.preferences import build_triplets, consistency_score
from uscope.tuning.tasks import TASKS, TaskCase, build_cases, split_users

__all__ = [
    "MESSAGES_FORMAT", "PREFERENCE_FORMAT", "TASKS", "TaskCase", "build_cases",
    "build_triplets", "consistency_score", "load_preference_dataset", "load_sft_dataset",
    "split_users", "validate_messages", "validate_preferences",
]
