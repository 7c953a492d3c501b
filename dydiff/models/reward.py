"""The reward model r_ψ(s, a) of Eq. 10: an MLP trained with MSE on the dataset's rewards."""

from __future__ import annotations

import torch
from torch import nn


class RewardModel(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 3):
        super().__init__()
        dims = [obs_dim + act_dim] + [hidden] * layers
        blocks = [m for a, b in zip(dims[:-1], dims[1:], strict=True) for m in (nn.Linear(a, b), nn.SiLU())]
        self.net = nn.Sequential(*blocks, nn.Linear(dims[-1], 1))
        self.register_buffer("in_mean", torch.zeros(obs_dim + act_dim))
        self.register_buffer("in_std", torch.ones(obs_dim + act_dim))

    def set_input_stats(self, obs: torch.Tensor, act: torch.Tensor) -> None:
        x = torch.cat([obs, act], -1)
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0).clamp(min=1e-6))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """r̂(s, a): (…, obs), (…, act) → (…,)."""
        return self.net((torch.cat([obs, act], -1) - self.in_mean) / self.in_std).squeeze(-1)

    def loss(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor) -> torch.Tensor:
        return ((self(obs, act) - rew) ** 2).mean()
