"""Generative models of user behaviour: U-MASK masks, the DiT denoiser and the PITuning intent head."""
