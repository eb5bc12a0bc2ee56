"""U-SCOPE semantic-augmented behavioural synthesis (seed paper 000, Sec. 5.2, eq. 25-26).

events H_u -> allowed (app, place) pairs (non-zero co-occurrence) + exploratory budget read from
the profile P_u -> constrained decoding of p(a_t, l_t | P_u, tau_t) (eq. 25) with outlines (or
vLLM structured outputs) -> synthetic events (``synthetic=True``, their own file) -> fidelity of
the app-category x location-category usage distribution (eq. 26, Fig. 5; place check-ins without
apps: venues are generated, and fidelity is read on place-category x hour). Synthetic events
augment training only; ``require_real`` keeps them out of every evaluation split.
Heavy libraries (torch, transformers, outlines, vllm, datasets) load inside the functions.
"""

from __future__ import annotations

from uscope.synth.constraint import BudgetCounter, ConstraintViolation, PairConstraint, choice_regex
from uscope.synth.decoders import FreeTextDecoder, OutlinesDecoder, load_synth_lm
from uscope.synth.exploration import ExplorationPolicy, ExplorationSignal, detect_exploration
from uscope.synth.fidelity import Fidelity, agreement, cramers_v, fidelity, usage_distribution
from uscope.synth.generate import (
    SynthConfig,
    Synthesis,
    UserPlan,
    generate_user,
    plan_users,
    synthesize,
)
from uscope.synth.guard import (
    SyntheticInEvaluation,
    load_synthetic,
    require_real,
    save_synthetic,
)
from uscope.synth.job import JobSummary, run_synthesis_job
from uscope.synth.pairs import Pair, allowed_pairs, exploration_candidates, population_pairs
from uscope.synth.resample import UserTables
from uscope.synth.serialise import TimedPair, format_sequence, generation_prompt, parse_sequence
from uscope.synth.training import SFTDataConfig, sft_dataset, sft_examples

__all__ = [
    "BudgetCounter", "ConstraintViolation", "ExplorationPolicy", "ExplorationSignal",
    "Fidelity", "FreeTextDecoder", "JobSummary", "OutlinesDecoder", "Pair", "PairConstraint",
    "SFTDataConfig", "SynthConfig", "Synthesis", "SyntheticInEvaluation", "TimedPair",
    "UserPlan", "UserTables", "agreement", "allowed_pairs", "choice_regex", "cramers_v",
    "detect_exploration", "exploration_candidates", "fidelity", "format_sequence",
    "generate_user", "generation_prompt", "load_synth_lm", "load_synthetic", "parse_sequence",
    "plan_users", "population_pairs", "require_real", "run_synthesis_job", "save_synthetic",
    "sft_dataset", "sft_examples", "synthesize", "usage_distribution",
]
