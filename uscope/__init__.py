"""uscope: LLM-written profiles of anonymous smartphone users and what they predict.

Implements U-SCOPE / U-MASK (seed paper 000) and PITuning (seed paper 002). The stages, in the
one direction data flows: ``uscope.data`` -> ``uscope.profile`` -> ``uscope.synth`` ->
``uscope.tuning`` -> ``generative`` -> ``uscope.recommend`` (checked by tests/test_import_flow.py).
"""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy public API: importing `uscope` stays light; the stage loads when first used.
    if name == "profile_users":  # issue 3: U-SCOPE batch profiling
        from uscope.profile import profile_users

        return profile_users
    raise AttributeError(f"module 'uscope' has no attribute {name!r}")
