"""DiT backbone, VP schedule and evidence-clamped samplers (U-MASK paper, section 6)."""

from generative.dit.loss import masked_diffusion_loss
from generative.dit.model import DiT, patchify, unpatchify
from generative.dit.sampler import clamp_evidence, sample
from generative.dit.schedule import SCHEDULERS, DDIMScheduler, DDPMScheduler, VPSchedule

__all__ = [
           "SCHEDULERS",
           "DDIMScheduler",
           "DDPMScheduler",
           "DiT",
           "VPSchedule",
           "clamp_evidence",
           "masked_diffusion_loss",
           "patchify",
           "sample",
           "unpatchify",
]
