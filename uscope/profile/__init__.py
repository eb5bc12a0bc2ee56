"""U-SCOPE batch profiling (seed paper 000, Sec. 5.1, eq. 21-24).

events H_u (eq. 21) -> features (pi_time, C_u, sigma_u) -> prompt x_u (``prompts/*.j2``) ->
profile y_u from a backend pi_theta (eq. 23) -> sentence embedding [CLS]_enc(y_u) (eq. 24,
before U-MASK's MLP) -> ``ProfileSet``. ``profile_energy`` / ``gibbs_posterior`` give the Gibbs
view of eq. 22 over candidate profiles.
"""

from __future__ import annotations

from uscope.profile.backends import (
    BACKENDS,
    Backend,
    Generation,
    GenerationConfig,
    ProfileRequest,
    make_backend,
)
from uscope.profile.batch import JobConfig, JobSummary, parse_shard, run_profile_job, shard_of
from uscope.profile.encoder import ProfileEncoder
from uscope.profile.energy import gibbs_posterior, profile_energy
from uscope.profile.features import FeatureConfig, UserFeatures, user_features
from uscope.profile.pipeline import ProfileConfig, profile_users
from uscope.profile.population import iter_features, population_features
from uscope.profile.profileset import ProfileSet
from uscope.profile.prompting import Prompt, PromptTemplate, load_template

__all__ = [
    "BACKENDS", "Backend", "FeatureConfig", "Generation", "GenerationConfig", "JobConfig",
    "JobSummary", "ProfileConfig", "ProfileEncoder", "ProfileRequest", "ProfileSet", "Prompt",
    "PromptTemplate", "UserFeatures", "gibbs_posterior", "iter_features", "load_template",
    "make_backend", "parse_shard", "population_features", "profile_energy", "profile_users", "run_profile_job",
    "shard_of", "user_features",
]
