"""Per-dimension normalisers with exact round trips.

Both work on numpy arrays and torch tensors (statistics are broadcast over the last axis) and
serialise to plain lists, so they can live in a manifest or a ``weights_only`` checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def _like(stat: np.ndarray, x: Array) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.as_tensor(stat, dtype=x.dtype, device=x.device)
    return stat.astype(x.dtype, copy=False)


@dataclass
class MinMaxNormalizer:
    """x ↦ 2·(x − min)/(max − min) − 1, mapping the data range to [−1, 1] (the official DyDiff code).

    A constant dimension (max == min) gets scale 1 so that it maps to −1 and back exactly.
    """

    low: np.ndarray
    high: np.ndarray
    kind = "minmax"

    @classmethod
    def fit(cls, x: np.ndarray) -> MinMaxNormalizer:
        x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        return cls(low=x.min(0), high=x.max(0))

    @property
    def scale(self) -> np.ndarray:
        span = np.asarray(self.high, np.float64) - np.asarray(self.low, np.float64)
        return np.where(span > 0, span / 2.0, 1.0)

    @property
    def center(self) -> np.ndarray:
        return np.asarray(self.low, np.float64) + self.scale

    def normalize(self, x: Array) -> Array:
        return (x - _like(self.center, x)) / _like(self.scale, x)

    def denormalize(self, z: Array) -> Array:
        return z * _like(self.scale, z) + _like(self.center, z)

    def state_dict(self) -> dict:
        return {
            "kind": self.kind,
            "low": np.asarray(self.low).tolist(),
            "high": np.asarray(self.high).tolist(),
        }


@dataclass
class StandardNormalizer:
    """x ↦ (x − mean)/(std + eps): the z-score (TD3+BC uses eps = 1e-3)."""

    mean: np.ndarray
    std: np.ndarray
    eps: float = 1e-3
    kind = "zscore"

    @classmethod
    def fit(cls, x: np.ndarray, eps: float = 1e-3) -> StandardNormalizer:
        x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        return cls(mean=x.mean(0), std=x.std(0), eps=eps)

    @property
    def center(self) -> np.ndarray:
        return np.asarray(self.mean, np.float64)

    @property
    def scale(self) -> np.ndarray:
        return np.asarray(self.std, np.float64) + self.eps

    normalize = MinMaxNormalizer.normalize
    denormalize = MinMaxNormalizer.denormalize

    def state_dict(self) -> dict:
        return {
            "kind": self.kind,
            "mean": np.asarray(self.mean).tolist(),
            "std": np.asarray(self.std).tolist(),
            "eps": self.eps,
        }


def normalizer_from_state(state: dict) -> MinMaxNormalizer | StandardNormalizer:
    """Rebuild a normaliser from ``state_dict()`` output."""
    if state["kind"] == "minmax":
        return MinMaxNormalizer(np.asarray(state["low"]), np.asarray(state["high"]))
    if state["kind"] == "zscore":
        return StandardNormalizer(np.asarray(state["mean"]), np.asarray(state["std"]), state["eps"])
    raise ValueError(f"unknown normaliser kind {state['kind']!r} (expected 'minmax' or 'zscore')")


def fit_normalizer(kind: str, x: np.ndarray) -> MinMaxNormalizer | StandardNormalizer:
    """``kind`` is 'minmax' (paper / official code) or 'zscore'."""
    if kind == "minmax":
        return MinMaxNormalizer.fit(x)
    if kind == "zscore":
        return StandardNormalizer.fit(x)
    raise ValueError(f"unknown normaliser kind {kind!r} (expected 'minmax' or 'zscore')")
