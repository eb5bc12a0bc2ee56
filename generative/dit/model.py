"""Diffusion transformer over spatio-temporal behaviour tensors (U-MASK paper section 6.3).

- Spatio-temporal patching: (C, T, H, W) -> L = (T/t0)(H/h0)(W/w0) tokens of size C t0 h0 w0;
  the evidence X_obs = M' * X_0 (eq. 28) and the mask are patched the same way (aligned tokens).
- eq. 33: Z^(0) = E + E_pos + E_time(t), factorised learned positions plus a sinusoidal
  diffusion-step embedding.
- eq. 34: c = e_u + e_tau, from the user/task context F_{b,tau} and the task id, modulates every
  block through adaptive layer norm; adaLN-Zero initialisation (Peebles & Xie, DiT) zeroes the
  modulation and the output projection, so a fresh network outputs exactly zero.
- Evidence fusion: "concat" joins each noisy token with its aligned evidence token feature-wise;
  "cross" adds a cross-attention from noisy tokens to evidence tokens in every block. Each
  evidence token carries its patch of X_obs, of the mask and of the evidence summary: the
  M'-weighted mean of the revealed values of each (channel, cell) over time, broadcast along T,
  so every token sees the user's observed level even far from the revealed slots.
The network only predicts; the schedule and the sampler live in schedule.py and sampler.py.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from generative.config import DiTConfig


def patchify(x: Tensor, patch: tuple[int, int, int]) -> Tensor:
    """(B, C, T, H, W) -> (B, L, C t0 h0 w0)."""
    B, C, T, H, W = x.shape
    t0, h0, w0 = patch
    x = x.reshape(B, C, T // t0, t0, H // h0, h0, W // w0, w0)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)                           # (B, T', H', W', C, t0, h0, w0)
    return x.reshape(B, (T // t0) * (H // h0) * (W // w0), C * t0 * h0 * w0)


def unpatchify(tokens: Tensor, cfg: DiTConfig) -> Tensor:
    """(B, L, C t0 h0 w0) -> (B, C, T, H, W)."""
    t0, h0, w0 = cfg.patch
    Tp, Hp, Wp = cfg.n_slots // t0, cfg.height // h0, cfg.width // w0
    x = tokens.reshape(tokens.shape[0], Tp, Hp, Wp, cfg.channels, t0, h0, w0)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)                           # (B, C, T', t0, H', h0, W', w0)
    return x.reshape(tokens.shape[0], cfg.channels, cfg.n_slots, cfg.height, cfg.width)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of diffusion steps t: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return nn.functional.pad(emb, (0, dim % 2))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        B, L, D = x.shape
        ctx = x if context is None else context
        q = self.q(x).view(B, L, self.heads, D // self.heads).transpose(1, 2)    # (B, h, L, d)
        k, v = self.kv(ctx).view(B, ctx.shape[1], 2, self.heads, D // self.heads).unbind(2)
        y = nn.functional.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2))
        return self.out(y.transpose(1, 2).reshape(B, L, D))                       # (B, L, D)


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero modulation by c (eq. 34), optional cross-attention."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        D = cfg.hidden
        self.cross = cfg.fusion == "cross"
        self.norm1 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(D, cfg.heads)
        self.norm2 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        hidden = int(D * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(D, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, D))
        n_mod = 6
        if self.cross:
            self.norm_x = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
            self.cross_attn = Attention(D, cfg.heads)
            n_mod = 9
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(D, n_mod * D))

    def forward(self, x: Tensor, c: Tensor, evidence: Tensor | None = None) -> Tensor:
        mods = self.adaLN(c).chunk(9 if self.cross else 6, dim=-1)
        sh1, sc1, g1, sh2, sc2, g2 = mods[:6]
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh1, sc1))
        if self.cross:
            sh3, sc3, g3 = mods[6:]
            x = x + g3.unsqueeze(1) * self.cross_attn(modulate(self.norm_x(x), sh3, sc3), evidence)
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh2, sc2))


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(cfg.hidden, out_dim)
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(cfg.hidden, 2 * cfg.hidden))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """epsilon_theta(X_t, X_obs, M', F_{b,tau}, t, tau) -> prediction of shape X_t (eq. 32)."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.hidden
        t0, h0, w0 = cfg.patch
        P = t0 * h0 * w0
        self.grid = (cfg.n_slots // t0, cfg.height // h0 * (cfg.width // w0))
        self.x_embed = nn.Linear(cfg.channels * P, D)                     # E_{u,t}
        self.obs_embed = nn.Linear((2 * cfg.channels + 1) * P, D)         # E^obs
        if cfg.fusion == "concat":
            self.fuse = nn.Linear(2 * D, D)
        self.pos_time = nn.Parameter(torch.randn(self.grid[0], D) * 0.02)  # E_pos, time part
        self.pos_space = nn.Parameter(torch.randn(self.grid[1], D) * 0.02)  # E_pos, space part
        self.t_embed = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, D))  # E_time
        self.user_embed = nn.Linear(cfg.context_dim, D)                   # e_u
        self.task_embed = nn.Embedding(cfg.n_tasks, D)                    # e_tau
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg, cfg.channels * P)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.task_embed.weight, std=0.02)
        for block in self.blocks:                                         # adaLN-Zero
            nn.init.zeros_(block.adaLN[-1].weight)
            nn.init.zeros_(block.adaLN[-1].bias)
        nn.init.zeros_(self.final.adaLN[-1].weight)
        nn.init.zeros_(self.final.adaLN[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    def positions(self) -> Tensor:
        Tp, S = self.grid
        return (self.pos_time[:, None, :] + self.pos_space[None, :, :]).reshape(Tp * S, -1)

    def forward(self, x_t: Tensor, t: Tensor, evidence: Tensor, mask: Tensor, context: Tensor,
                task: Tensor) -> Tensor:
        """x_t, evidence: (B, C, T, H, W); mask: (B, T, H, W) weighted mask M'; t, task: (B,);
        context: (B, context_dim)."""
        cfg = self.cfg
        tokens = self.x_embed(patchify(x_t, cfg.patch))                   # (B, L, D)
        m = mask.unsqueeze(1)                                             # (B, 1, T, H, W)
        summary = evidence.sum(2, keepdim=True) / m.sum(2, keepdim=True).clamp_min(1e-6)
        summary = summary.expand_as(evidence)                             # (B, C, T, H, W)
        obs = torch.cat([evidence, m, summary], dim=1)                    # (B, 2C+1, T, H, W)
        obs_tokens = self.obs_embed(patchify(obs, cfg.patch)) + self.positions()  # (B, L, D)
        t_emb = self.t_embed(timestep_embedding(t, cfg.hidden))           # (B, D)
        z = tokens + self.positions() + t_emb.unsqueeze(1)                # eq. 33
        if cfg.fusion == "concat":
            z = self.fuse(torch.cat([z, obs_tokens], dim=-1))             # (B, L, D)
        c = self.user_embed(context) + self.task_embed(task)              # eq. 34
        for block in self.blocks:
            z = block(z, c, obs_tokens if cfg.fusion == "cross" else None)
        return unpatchify(self.final(z, c), cfg)                           # (B, C, T, H, W)
