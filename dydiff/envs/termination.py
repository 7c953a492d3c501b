"""Termination functions ``done(next_obs)`` on de-normalised observations (numpy or torch, any batch shape).

They mirror the Gymnasium v5 health checks as MBPO's static functions do, from the observation alone.
"""

from __future__ import annotations


def never(next_obs):
    """HalfCheetah and the mazes never terminate."""
    return abs(next_obs[..., 0]) < 0  # all False, as a boolean array of the input's kind


def hopper(next_obs):
    """Hopper-v5: healthy iff obs[1:] ∈ (−100, 100), height obs[0] > 0.7 and |angle obs[1]| < 0.2."""
    height, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = (abs(next_obs[..., 1:]) < 100).all(-1) & (height > 0.7) & (abs(angle) < 0.2)
    return ~healthy


def walker2d(next_obs):
    """Walker2d-v5: healthy iff 0.8 < height obs[0] < 2.0 and |angle obs[1]| < 1."""
    height, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = (height > 0.8) & (height < 2.0) & (abs(angle) < 1.0)
    return ~healthy


TERMINATIONS = {"never": never, "hopper": hopper, "walker2d": walker2d}
