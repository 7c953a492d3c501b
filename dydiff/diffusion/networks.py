"""Denoiser networks F_θ(x, c_noise) over a trajectory window x (B, H, D) → (B, H, D).

- ``TemporalUNet``: the 1-D temporal U-Net of Diffuser (Janner et al., 2022) that DyDiff uses: residual
  blocks of Conv1d → GroupNorm → Mish with a time embedding, down/up-sampling by 2 per level.
  Paper size: dim 128, dim_mults (1, 4, 8), kernel 5 (about 58M parameters for hopper, horizon 100).
- ``ResidualMLP``: the window flattened, through residual MLP blocks; much cheaper to run on a CPU. With
  ``causal=True`` its weights are masked as in MADE (Germain et al., 2015) so that the output at step t sees
  only s_0, a_0..a_{t−1} and the window's states s_1..s_t: a trajectory model cannot then infer s_t from the
  actions taken after it. Those reveal the state under the dataset's feedback policy and mislead the model
  under any other policy, such as the one DyDiff's synthesis rolls out. Hidden units get time degrees spread
  evenly over 0..L; LayerNorm, which mixes all units, is left out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,) → (B, dim)
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
        args = t.float()[:, None] * freqs[None] * 1000  # c_noise = ¼ ln σ is O(1): scale like diffusion steps
        return torch.cat([args.sin(), args.cos()], dim=-1).to(t.dtype)


def time_mlp(dim: int, out: int) -> nn.Module:
    return nn.Sequential(SinusoidalEmbedding(dim), nn.Linear(dim, dim * 4), nn.Mish(), nn.Linear(dim * 4, out))


class ConvBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int = 8):
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out), nn.Mish())


class ResidualTemporalBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int, kernel: int):
        super().__init__()
        self.block1, self.block2 = ConvBlock(c_in, c_out, kernel), ConvBlock(c_out, c_out, kernel)
        self.time = nn.Sequential(nn.Mish(), nn.Linear(t_dim, c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # x (B, C, H), t (B, t_dim)
        return self.block2(self.block1(x) + self.time(t)[..., None]) + self.skip(x)


class TemporalUNet(nn.Module):
    def __init__(self, transition_dim: int, dim: int = 32, dim_mults: tuple = (1, 2, 4), kernel: int = 5):
        super().__init__()
        dims = [transition_dim, *(dim * m for m in dim_mults)]
        self.levels = len(dim_mults) - 1
        self.time = time_mlp(dim, dim)
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            last = i == len(dim_mults) - 1
            down = nn.Identity() if last else nn.Conv1d(b, b, 3, stride=2, padding=1)
            self.downs.append(nn.ModuleList([ResidualTemporalBlock(a, b, dim, kernel),
                                             ResidualTemporalBlock(b, b, dim, kernel), down]))
        mid = dims[-1]
        self.mid1 = ResidualTemporalBlock(mid, mid, dim, kernel)
        self.mid2 = ResidualTemporalBlock(mid, mid, dim, kernel)
        for a, b in reversed(list(zip(dims[1:-1], dims[2:], strict=True))):
            self.ups.append(nn.ModuleList([ResidualTemporalBlock(b * 2, a, dim, kernel),
                                           ResidualTemporalBlock(a, a, dim, kernel),
                                           nn.ConvTranspose1d(a, a, 4, stride=2, padding=1)]))
        self.final = nn.Sequential(ConvBlock(dim, dim, kernel), nn.Conv1d(dim, transition_dim, 1))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        horizon = x.shape[1]
        pad = (-horizon) % (2**self.levels)  # any horizon: pad to a multiple of 2^levels, crop at the end
        h = F.pad(x.transpose(1, 2), (0, pad))
        t = self.time(c_noise)
        skips = []
        for block1, block2, down in self.downs:
            h = block2(block1(h, t), t)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid1(h, t), t)
        for block1, block2, up in self.ups:
            h = block2(block1(torch.cat([h, skips.pop()], dim=1), t), t)
            h = up(h)
        return self.final(h)[..., :horizon].transpose(1, 2)


class MaskedLinear(nn.Linear):
    """A linear layer with a fixed 0/1 connectivity mask on its weight."""

    def __init__(self, mask: torch.Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def time_degrees(horizon: int, transition_dim: int, state_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The step each flattened window entry belongs to, as an input (a state s_t: t; an action a_t: t + 1, the
    first state it moves) and as an output (a state s_t: t; actions, overwritten by the conditions: the last)."""
    t = torch.arange(horizon)[:, None].expand(horizon, transition_dim)
    is_act = torch.arange(transition_dim)[None] >= state_dim
    return torch.where(is_act, t + 1, t).flatten(), torch.where(is_act, horizon - 1, t).flatten()


def spread_degrees(width: int, horizon: int) -> torch.Tensor:
    return torch.arange(width) * horizon // width  # 0..L, evenly


class ResidualMLP(nn.Module):
    def __init__(self, transition_dim: int, horizon: int, width: int = 512, depth: int = 4, t_dim: int = 64,
                 causal: bool = False, state_dim: int | None = None):
        super().__init__()
        n = transition_dim * horizon
        self.horizon, self.transition_dim = horizon, transition_dim
        self.time = time_mlp(t_dim, width)
        if causal:
            d_in, d_out = time_degrees(horizon, transition_dim, state_dim)
            d_h, d_2h = spread_degrees(width, horizon), spread_degrees(2 * width, horizon)
            linear = lambda d_from, d_to: MaskedLinear(d_to[:, None] >= d_from[None])  # noqa: E731
            norm = nn.Identity
        else:
            linear = lambda d_from, d_to: nn.Linear(len(d_from), len(d_to))  # noqa: E731
            norm = lambda: nn.LayerNorm(width)  # noqa: E731
            d_in, d_out, d_h, d_2h = (torch.zeros(k) for k in (n, n, width, 2 * width))
        self.inp = linear(d_in, d_h)
        self.blocks = nn.ModuleList(nn.Sequential(norm(), linear(d_h, d_2h), nn.Mish(), linear(d_2h, d_h))
                                    for _ in range(depth))
        self.out = nn.Sequential(norm(), linear(d_h, d_out))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.flatten(1)) + self.time(c_noise)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).view(-1, self.horizon, self.transition_dim)


def build_network(network: str, transition_dim: int, horizon: int, unet: dict | None = None,
                  mlp: dict | None = None, state_dim: int | None = None) -> nn.Module:
    """``network``: 'unet' (sized by ``unet``: dim, dim_mults, kernel) or 'mlp' (by ``mlp``: width, depth,
    causal; a causal MLP needs ``state_dim``, the first entries of a window row)."""
    if network == "unet":
        kw = {**(unet or {})}
        kw["dim_mults"] = tuple(kw.get("dim_mults", (1, 2, 4)))
        return TemporalUNet(transition_dim, **kw)
    if network == "mlp":
        return ResidualMLP(transition_dim, horizon, **(mlp or {}), state_dim=state_dim)
    raise ValueError(f"unknown denoiser network {network!r} (expected 'unet' or 'mlp')")
