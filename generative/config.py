"""Dataclass configs for U-MASK, the DiT backbone, the diffusion schedule and the task regimes.

Paper: U-MASK (seed 000), section 4 (eq. 5-20) and section 6 (eq. 28-35). Every module takes
one of these objects; size presets are small factory functions in ``DIT_PRESETS``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal


@dataclass
class TaskConfig:
    """One inference regime tau: which slots are the target window and how much evidence it may use.

    The last ``horizon`` time slots are the target window; evidence may only come from the
    ``history`` slots before it (minus ``history_skip`` leading slots). ``max_ratio`` caps the
    learnable base ratio rho_tau (eq. 13); ``cold`` switches on uniform mixing (eq. 18).
    ``centre`` makes the DiT complete deviations from the user's revealed-evidence mean
    (instance normalisation, see ``UMaskCompleter.evidence_offset``).
    """

    name: str
    horizon: int                  # slots hidden at the end of the tensor (the target window)
    init_ratio: float = 0.5       # initial rho_tau (eq. 13)
    max_ratio: float = 1.0        # rho_tau = max_ratio * sigmoid(logit)
    recency: float = 0.0          # slope of the initial temporal profile phi (eq. 14), per T slots
    cold: bool = False            # eq. 18 uniform mixing
    cold_epsilon: float = 0.5     # epsilon of eq. 18
    centre: bool = False          # diffuse X_0 minus the per-user mean of the revealed evidence


def default_tasks(n_slots: int) -> list[TaskConfig]:
    """Short-term, long-term and cold-start regimes for a tensor with ``n_slots`` time slots."""
    short = max(1, n_slots // 6)
    long = max(short + 1, n_slots // 2)
    return [
        TaskConfig("short_term", horizon=short, init_ratio=0.75, recency=6.0),
        TaskConfig("long_term", horizon=long, init_ratio=0.45, recency=2.0),
        TaskConfig("cold_start", horizon=long, init_ratio=0.1, max_ratio=0.15, cold=True),
    ]


@dataclass
class UMaskConfig:
    """U-MASK mask generator (section 4)."""

    n_slots: int = 24             # T
    height: int = 1               # H
    width: int = 1                # W
    user_dim: int = 384           # d of the U-SCOPE embedding h_u (eq. 4)
    latent_dim: int = 32          # d of F_short / F_long / F_pat (eq. 5)
    task_dim: int = 32            # d_tau of F_{b,tau} (eq. 6)
    encoder_layers: int = 1       # Transformer layers of T_hier (eq. 5)
    encoder_heads: int = 2
    fisher_eps: float = 1e-4      # epsilon of eq. 7
    refine_steps: int = 2         # K of eq. 8
    refine_eta: float = 0.5       # eta of eq. 8
    n_groups: int = 4             # K soft behaviour groups (eq. 10)
    group_temperature: float = 1.0  # T_tmp of eq. 10
    relax_temperature: float = 0.5  # temperature of the top-k relaxation (eq. 16-17)
    infonce_temperature: float = 0.1  # eq. 20
    # Centring offset of the tasks with TaskConfig.centre: "uniform" = plain mean of the revealed
    # slots; "relevance" = mean weighted by M' = I * p (eq. 17), the weights the DiT's evidence
    # summary uses (with the fixed-mask control M' = I, so both are the plain mean there).
    centre_weighting: Literal["uniform", "relevance"] = "uniform"
    tasks: list[TaskConfig] = field(default_factory=lambda: default_tasks(24))

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def task_index(self, name: str) -> int:
        names = [t.name for t in self.tasks]
        if name not in names:
            raise ValueError(f"unknown task {name!r}; known tasks: {names}")
        return names.index(name)

    def set_centred(self, names: list[str]) -> None:
        """Switch ``TaskConfig.centre`` on for the tasks named and off for the others."""
        indices = {self.task_index(name) for name in names}   # unknown names raise
        for i, task in enumerate(self.tasks):
            task.centre = i in indices


@dataclass
class DiTConfig:
    """Diffusion transformer backbone (section 6.3)."""

    channels: int = 8             # C
    n_slots: int = 24             # T
    height: int = 1               # H
    width: int = 1                # W
    patch: tuple[int, int, int] = (1, 1, 1)  # (t0, h0, w0)
    hidden: int = 64              # D
    depth: int = 2                # N blocks
    heads: int = 4
    mlp_ratio: float = 2.0
    context_dim: int = 32         # dimension of the user/task context F_{b,tau} fed to e_u (eq. 34)
    n_tasks: int = 3
    fusion: Literal["concat", "cross"] = "concat"  # how evidence tokens enter (section 6.3)

    def __post_init__(self) -> None:
        self.patch = tuple(self.patch)
        t0, h0, w0 = self.patch
        if self.n_slots % t0 or self.height % h0 or self.width % w0:
            raise ValueError(
                f"patch {self.patch} must divide (T, H, W) = "
                f"{(self.n_slots, self.height, self.width)}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} must be a multiple of heads {self.heads}")
        if self.fusion not in ("concat", "cross"):
            raise ValueError(f"fusion must be 'concat' or 'cross', got {self.fusion!r}")


@dataclass
class ScheduleConfig:
    """Variance-preserving schedule (eq. 30-31)."""

    train_steps: int = 200        # T_d
    beta_schedule: Literal["linear", "cosine"] = "cosine"
    beta_start: float = 1e-4      # linear schedule only
    beta_end: float = 0.02        # linear schedule only
    prediction_type: Literal["sample", "epsilon"] = "sample"  # eq. 32 regresses X_0
    clip_sample: float | None = 1.0  # clamp predicted X_0 to [-clip, clip] (data live in [-1, 1])


@dataclass
class CompletionConfig:
    """Everything needed to rebuild a completion model; saved as JSON next to the weights."""

    umask: UMaskConfig
    dit: DiTConfig
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    mask_policy: Literal["adaptive", "fixed"] = "adaptive"  # "fixed" = the RQ2 control
    channel_names: list[str] = field(default_factory=list)
    channel_groups: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CompletionConfig:
        um = dict(d["umask"])
        um["tasks"] = [TaskConfig(**t) for t in um["tasks"]]
        um.setdefault("centre_weighting", "uniform")   # configs saved before the option existed
        return cls(umask=UMaskConfig(**um), dit=DiTConfig(**d["dit"]),
                   schedule=ScheduleConfig(**d["schedule"]), mask_policy=d["mask_policy"],
                   channel_names=list(d.get("channel_names", [])),
                   channel_groups={k: list(v) for k, v in d.get("channel_groups", {}).items()})


def _preset(hidden: int, depth: int, heads: int, latent: int):
    def make(channels: int, n_slots: int, height: int = 1, width: int = 1,
             patch: tuple[int, int, int] = (1, 1, 1), user_dim: int = 384,
             tasks: list[TaskConfig] | None = None, fusion: str = "concat",
             mask_policy: str = "adaptive", train_steps: int = 200) -> CompletionConfig:
        um = UMaskConfig(n_slots=n_slots, height=height, width=width, user_dim=user_dim,
                         latent_dim=latent, task_dim=latent,
                         tasks=tasks if tasks is not None else default_tasks(n_slots))
        dit = DiTConfig(channels=channels, n_slots=n_slots, height=height, width=width,
                        patch=patch, hidden=hidden, depth=depth, heads=heads,
                        context_dim=latent, n_tasks=um.n_tasks, fusion=fusion)
        return CompletionConfig(umask=um, dit=dit,
                                schedule=ScheduleConfig(train_steps=train_steps),
                                mask_policy=mask_policy)
    return make


# Size presets: tiny for plumbing tests, small for CPU benchmarks, base for a GPU.
DIT_PRESETS = {
    "umask-tiny": _preset(hidden=16, depth=1, heads=2, latent=8),
    "umask-small": _preset(hidden=64, depth=3, heads=4, latent=32),
    "umask-base": _preset(hidden=256, depth=8, heads=8, latent=64),
}
