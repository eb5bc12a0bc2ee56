"""Novelty recommendations (seed paper 000, RQ5): apps, places, location categories and
intents a user has not used yet, from U-SCOPE profiles and the event table.

Strategies (``ALL_STRATEGIES``): ``hybrid`` (the default, eq. H1-H3), ``neighbours`` (profile
neighbours, eq. N1-N3), ``popular``, and the collaborative-filtering anchors ``itemknn``,
``userknn``, ``ease`` (EASE^R) and ``als`` / ``bpr`` (implicit); ``llm`` and ``completion``
load on demand.
"""

from uscope.data.items import KIND_COLUMNS, UsageMatrix  # the item views, re-exported
from uscope.recommend.collaborative import (
    ALSStrategy,
    BPRStrategy,
    EASEStrategy,
    ItemKNNStrategy,
    UserKNNStrategy,
)
from uscope.recommend.hybrid import HybridStrategy
from uscope.recommend.metrics import ranking_metrics
from uscope.recommend.recommender import ALL_STRATEGIES, DEFAULT, Recommendation, Recommender
from uscope.recommend.strategies import STRATEGIES, NeighboursStrategy, PopularStrategy

__all__ = ["ALL_STRATEGIES", "DEFAULT", "KIND_COLUMNS", "STRATEGIES", "ALSStrategy",
           "BPRStrategy", "EASEStrategy", "HybridStrategy", "ItemKNNStrategy",
           "NeighboursStrategy", "PopularStrategy", "Recommendation", "Recommender",
           "UsageMatrix", "UserKNNStrategy", "ranking_metrics"]
