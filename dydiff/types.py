"""The records every layer passes: ``Transitions`` and the D4RL transition keys. Torch only."""

from __future__ import annotations

from typing import NamedTuple

import torch

KEYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")  # D4RL's schema
STATE_KEYS = ("qpos", "qvel")  # the simulator state before each row (infos/qpos, infos/qvel)


class Transitions(NamedTuple):
    """A batch (or the whole set) of transitions; ``done`` is termination only, never a timeout."""

    obs: torch.Tensor  # (N, obs_dim)
    act: torch.Tensor  # (N, act_dim)
    rew: torch.Tensor  # (N,)
    next_obs: torch.Tensor  # (N, obs_dim)
    done: torch.Tensor  # (N,)

    def pack(self) -> torch.Tensor:
        """One (N, 2·obs + act + 2) tensor: a batch is then one gather instead of five."""
        return torch.cat([self.obs, self.act, self.rew[..., None], self.next_obs, self.done[..., None]], -1)

    @staticmethod
    def unpack(rows: torch.Tensor, obs_dim: int, act_dim: int) -> Transitions:
        """Rows (N, width), or (K, N, width) for K seeds' batches stacked."""
        o, a, r, n, d = rows.split([obs_dim, act_dim, 1, obs_dim, 1], -1)
        return Transitions(o, a, r[..., 0], n, d[..., 0])


def stream_seed(seed: int, rank: int, counter: int) -> int:
    """The seed of one random stream: (run seed, DDP rank, counter). Every per-update, per-step and per-round
    generator is seeded with it, so a resumed run draws what an uninterrupted one would."""
    return seed * 1_000_003 + rank * 7919 + counter
