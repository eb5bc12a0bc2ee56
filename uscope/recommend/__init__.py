"""Novelty recommendations (seed paper 000, RQ5): apps, locations and intents a user has not
used yet, from U-SCOPE profiles and the event table."""

from uscope.data.items import KIND_COLUMNS, UsageMatrix  # the item views, re-exported
from uscope.recommend.metrics import ranking_metrics
from uscope.recommend.recommender import Recommendation, Recommender
from uscope.recommend.strategies import STRATEGIES, NeighboursStrategy, PopularStrategy

__all__ = ["KIND_COLUMNS", "STRATEGIES", "NeighboursStrategy", "PopularStrategy",
           "Recommendation", "Recommender", "UsageMatrix", "ranking_metrics"]
