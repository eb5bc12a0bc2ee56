"""Generative models of user behaviour: U-MASK masks, the DiT denoiser and the PITuning intent head.

- ``generative.umask``: user- and task-specific masks (U-MASK paper section 4, eq. 5-18, 20);
- ``generative.dit``: DiT denoiser, VP schedule, evidence-clamped DDPM/DDIM samplers (section 6);
- ``generative.tasks``: short-term, long-term and cold-start regimes as masks;
- ``generative.completion``: ``UMaskCompleter`` (complete, save, load);
- ``generative.train``: joint training (Alg. 1); ``generative.baselines``, ``generative.evaluate``;
- ``generative.intent``: the PITuning intent head.
"""
