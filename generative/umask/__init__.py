"""U-MASK: user- and task-specific spatio-temporal masks (U-MASK paper, section 4)."""

from generative.umask.losses import info_nce
from generative.umask.model import MaskOutput, UMask
from generative.umask.topk import (
                                   cold_start_mix,
                                   distribution_entropy,
                                   fixed_random_mask,
                                   ratio_constrained_mask,
)

__all__ = [
                                   "MaskOutput",
                                   "UMask",
                                   "cold_start_mix",
                                   "distribution_entropy",
                                   "fixed_random_mask",
                                   "info_nce",
                                   "ratio_constrained_mask",
]
