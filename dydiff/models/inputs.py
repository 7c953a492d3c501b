"""Input standardisation shared by the single-step models: x = ((s ‖ a) − mean) / std over the training split."""

from __future__ import annotations

import torch
from torch import nn


class StandardizedInput(nn.Module):
    """A model whose input (s ‖ a) is standardised with statistics stored as buffers ``in_mean``/``in_std``."""

    def register_input_stats(self, dim: int) -> None:
        self.register_buffer("in_mean", torch.zeros(dim))
        self.register_buffer("in_std", torch.ones(dim))

    def set_input_stats(self, obs: torch.Tensor, act: torch.Tensor) -> None:
        x = torch.cat([obs, act], -1)
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0).clamp(min=1e-6))

    def standardize(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return (torch.cat([obs, act], -1) - self.in_mean) / self.in_std
