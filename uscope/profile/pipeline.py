"""U-SCOPE profiling in memory: H_u (eq. 21) -> x_u -> y_u (eq. 23) -> [CLS]_enc(y_u) (eq. 24).

``profile_users`` is the Python API; ``profile_chunk`` is the unit of work that the resumable
batch job (``uscope.profile.batch``) also runs, so both paths write identical rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd

from uscope.data.schema import DataError, validate_events
from uscope.profile.backends import (
    Backend,
    GenerationConfig,
    ProfileRequest,
    generate_with_retries,
    make_backend,
)
from uscope.profile.encoder import ProfileEncoder
from uscope.profile.faithfulness import vocabulary
from uscope.profile.features import FeatureConfig
from uscope.profile.population import iter_features
from uscope.profile.profileset import STATUS_FAILED, STATUS_OK, ProfileSet
from uscope.profile.prompting import GROUNDED_TEMPLATE, PromptTemplate, load_template


@dataclass(frozen=True)
class ProfileConfig:
    """How each user is profiled (independent of which backend writes the text)."""

    template: str = GROUNDED_TEMPLATE  # name in prompts/ or a .j2 path; "profile_v2" = free
    features: FeatureConfig = field(default_factory=FeatureConfig)
    batch_size: int = 8  # requests per backend call
    retries: int = 2  # extra attempts for a failed or empty generation
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def build_requests(events: pd.DataFrame, user_ids: Sequence[str], template: PromptTemplate,
                   features: FeatureConfig, slices: dict[str, slice] | None = None
                   ) -> list[ProfileRequest]:
    """Features and prompt x_u of each listed user (users without events are cold starts);
    ``slices``: ``user_slices(events)`` when the caller already has it."""
    return [ProfileRequest(f.user_id, template.render(f), f)
            for f in iter_features(events, user_ids, features, slices=slices)]


def profile_chunk(requests: Sequence[ProfileRequest], backend: Backend, encoder: ProfileEncoder,
                  template: PromptTemplate, config: ProfileConfig,
                  on_batch: Callable[[int], Any] | None = None) -> ProfileSet:
    """Generate y_u in batches (with retries), embed the successful ones, return their rows.
    A grounded template's free text is checked against the names of the whole chunk."""
    if template.grounded and hasattr(backend, "names"):
        backend.names = set(backend.names) | vocabulary(r.features for r in requests)
    outcomes = []
    for start in range(0, len(requests), config.batch_size):
        batch = requests[start:start + config.batch_size]
        outcomes += generate_with_retries(backend, batch, retries=config.retries,
                                          backoff_s=config.backoff_s)
        if on_batch is not None:
            on_batch(len(batch))
    good = [i for i, o in enumerate(outcomes) if o.error is None]
    vectors = encoder.encode([outcomes[i].text for i in good])  # (n_ok, D) eq. 24 before MLP
    embedding: list[Any] = [None] * len(outcomes)
    for row, i in enumerate(good):
        embedding[i] = vectors[row]
    now = pd.Timestamp.now(tz="UTC")
    frame = pd.DataFrame({
        "user_id": [r.user_id for r in requests],
        "status": [STATUS_OK if o.error is None else STATUS_FAILED for o in outcomes],
        "error": [o.error for o in outcomes],
        "prompt": [r.prompt.user for r in requests],
        "profile": [o.text for o in outcomes],
        "backend": backend.name,
        "model": backend.model,
        "template_version": template.version,
        "encoder": encoder.label,
        "n_events": [r.features.n_events for r in requests],
        "n_used": [r.features.n_used for r in requests],
        "truncated": [r.features.truncated for r in requests],
        "attempts": [o.attempts for o in outcomes],
        "created_at": now,
        "embedding": embedding,
    })
    return ProfileSet(frame)


def resolve_backend(backend: str | Backend, model: str | None,
                    generation: GenerationConfig | None, options: dict[str, Any]) -> Backend:
    if isinstance(backend, str):
        return make_backend(backend, model, generation, **options)
    if model is not None or options:
        raise ValueError("model and backend options only apply when backend is given by name")
    return backend


@lru_cache(maxsize=1)
def _bundled_encoder() -> ProfileEncoder:
    return ProfileEncoder()


def resolve_encoder(encoder: str | os.PathLike | ProfileEncoder | None) -> ProfileEncoder:
    """A ``ProfileEncoder``; the bundled MiniLM is loaded once per process."""
    if isinstance(encoder, ProfileEncoder):
        return encoder
    return _bundled_encoder() if encoder is None else ProfileEncoder(encoder)


def event_users(events: pd.DataFrame) -> list[str]:
    """Distinct user ids of an event table, sorted."""
    return sorted(events["user_id"].astype(str).unique().tolist())


def profile_users(events: pd.DataFrame, backend: str | Backend = "heuristic", *,
                  model: str | None = None, encoder: str | os.PathLike | ProfileEncoder | None = None,
                  users: Sequence[str] | None = None, config: ProfileConfig | None = None,
                  generation: GenerationConfig | None = None,
                  on_batch: Callable[[int], Any] | None = None,
                  **backend_options: Any) -> ProfileSet:
    """Profile every user of ``events`` (or the listed ``users``) and embed the profiles.

    ``backend``: "heuristic", "transformers" (default model: bundled SmolLM2-135M-Instruct),
    "vllm", "openai", or a ``Backend`` instance. ``encoder``: None for the bundled
    all-MiniLM-L6-v2, a path, or a ``ProfileEncoder``. Users listed in ``users`` but absent
    from ``events`` get cold-start profiles. Failed users are kept with their reason.
    """
    config = config or ProfileConfig()
    events = validate_events(events)
    if users is None:
        if events.empty:
            raise DataError("the event table has no rows: no user to profile (pass users= to "
                            "profile cold-start users)", field="user_id")
        users = event_users(events)
    users = [str(u) for u in users]
    if len(set(users)) != len(users):
        raise ValueError("users lists some user more than once")
    template = load_template(config.template)
    requests = build_requests(events, users, template, config.features)
    chosen = resolve_backend(backend, model, generation, backend_options)
    return profile_chunk(requests, chosen, resolve_encoder(encoder), template, config, on_batch)
