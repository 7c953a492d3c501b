"""Trajectory windows for the diffusion model (paper Eq. 2).

A window holds L+1 states and L actions, x = [(s_0, a_0), …, (s_{L−1}, a_{L−1}), (s_L, ·)], taken with
stride 1 inside an episode. The last row's action entry is always the pad (Eq. 2 has no a_L), as it is at
sampling: a window that does not end its episode must not show the model the next action. An episode
shorter than L gives one window padded at the end with ``pad_value`` (just below −1 after min–max
normalisation); padded states are left out of the loss.
"""

from __future__ import annotations

import numpy as np
import torch

from dydiff.data.dataset import OfflineDataset
from dydiff.data.normalizers import MinMaxNormalizer, StandardNormalizer, fit_normalizer


def fit_window_normalizer(ds: OfflineDataset, kind: str = "minmax") -> MinMaxNormalizer | StandardNormalizer:
    """One normaliser over the joint (state ‖ action) feature: states from observations and next
    observations, actions from actions, each dimension on its own."""
    states = np.concatenate([ds.observations, ds.next_observations])
    s, a = fit_normalizer(kind, states), fit_normalizer(kind, ds.actions)
    if kind == "minmax":
        return MinMaxNormalizer(np.concatenate([s.low, a.low]), np.concatenate([s.high, a.high]))
    return StandardNormalizer(np.concatenate([s.mean, a.mean]), np.concatenate([s.std, a.std]), s.eps)


class TrajectoryWindows:
    """All stride-1 windows of length ``horizon`` over a dataset, built lazily from one padded row array.

    ``rows`` stores every episode as T+1 normalised (state ‖ action) rows (the last row's action is
    padding) followed by ``horizon`` padding rows, so window i is ``rows[starts[i] : starts[i] + L + 1]``.
    """

    def __init__(self, ds: OfflineDataset, horizon: int, normalizer=None, pad_value: float = -1.1):
        if horizon < 1:
            raise ValueError(f"horizon must be ≥ 1, got {horizon}")
        self.horizon, self.pad_value = horizon, pad_value
        self.obs_dim, self.act_dim = ds.task.obs_dim, ds.task.act_dim
        self.normalizer = normalizer if normalizer is not None else fit_window_normalizer(ds)
        starts, ends = ds.episode_starts, ds.episode_ends
        lengths = ends - starts  # T_k transitions per episode
        offsets = np.concatenate([[0], np.cumsum(lengths + 1 + horizon)[:-1]])
        total = int((lengths + 1 + horizon).sum())
        rows = np.full((total, self.obs_dim + self.act_dim), pad_value, dtype=np.float32)
        valid = np.zeros(total, dtype=bool)
        episode = np.repeat(np.arange(len(starts)), lengths)
        idx = offsets[episode] + np.arange(len(ds)) - starts[episode]  # row of every transition
        rows[idx] = self.normalizer.normalize(np.concatenate([ds.observations, ds.actions], 1))
        last = offsets + lengths  # row of each episode's final state
        final = np.concatenate([ds.next_observations[ends - 1], ds.actions[ends - 1]], 1)
        rows[last, : self.obs_dim] = self.normalizer.normalize(final)[:, : self.obs_dim]
        valid[idx], valid[last] = True, True
        self.rows, self.valid = torch.from_numpy(rows), torch.from_numpy(valid)
        n_windows = np.maximum(lengths - horizon + 1, 1)
        self.starts = torch.from_numpy(np.repeat(offsets, n_windows) + _ranges(n_windows))
        self.episode = torch.from_numpy(np.repeat(np.arange(len(starts)), n_windows))  # episode of each window

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows ``i`` (int, slice or index tensor) → x (…, L+1, obs+act) and state mask (…, L+1).

        Action t is real iff state t+1 is (``mask[..., t+1]``)."""
        return gather_windows(self.rows, self.valid, self.starts[i], self.horizon, self.obs_dim, self.pad_value)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (…, L+1, D) → states (…, L+1, obs_dim), actions (…, L, act_dim)."""
        return x[..., : self.obs_dim], x[..., :-1, self.obs_dim :]


def gather_windows(rows: torch.Tensor, valid: torch.Tensor, starts: torch.Tensor, horizon: int, obs_dim: int,
                   pad_value: float):
    """rows[start : start + L + 1] for every start, with the last row's action set to the pad (Eq. 2), on
    whatever device the tensors live."""
    index = starts.unsqueeze(-1) + torch.arange(horizon + 1, device=starts.device)
    x = rows[index]
    x[..., -1, obs_dim:] = pad_value
    return x, valid[index]


def _ranges(counts: np.ndarray) -> np.ndarray:
    """[0..c0−1, 0..c1−1, …] for counts c."""
    total = counts.sum()
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
