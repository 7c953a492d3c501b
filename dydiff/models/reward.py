"""The reward model r_ψ(s, a) of Eq. 10: an MLP trained with MSE on the dataset's rewards."""

from __future__ import annotations

import torch
from torch import nn

from dydiff.models.inputs import StandardizedInput


class RewardModel(StandardizedInput):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 3):
        super().__init__()
        dims = [obs_dim + act_dim] + [hidden] * layers
        blocks = [m for a, b in zip(dims[:-1], dims[1:], strict=True) for m in (nn.Linear(a, b), nn.SiLU())]
        self.net = nn.Sequential(*blocks, nn.Linear(dims[-1], 1))
        self.register_input_stats(obs_dim + act_dim)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """r̂(s, a): (…, obs), (…, act) → (…,)."""
        return self.net(self.standardize(obs, act)).squeeze(-1)

    def loss(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor) -> torch.Tensor:
        return ((self(obs, act) - rew) ** 2).mean()
