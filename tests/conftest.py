from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # so tests can import the stage scripts (stages/*.py) in-process


@pytest.fixture(scope="session")
def umaze_ds():
    """A small built-in maze2d-umaze dataset, generated once per session (no cache, no references)."""
    from dydiff.builtin.maze import generate_maze_dataset
    from dydiff.envs.registry import get_task

    return generate_maze_dataset(get_task("maze2d-umaze"), 4000, seed=1, progress=False)


def make_arrays(episode_lengths, obs_dim=4, act_dim=2, terminal_last=(), seed=0):
    """Continuous D4RL-style arrays: episode k has the given length; episodes in ``terminal_last`` end in a
    terminal, the others in a timeout. Observation row i is filled with values derived from i."""
    rng = np.random.default_rng(seed)
    obs, nxt, term, tout = [], [], [], []
    for k, n in enumerate(episode_lengths):
        states = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
        obs.append(states[:-1])
        nxt.append(states[1:])
        t = np.zeros(n, bool)
        o = np.zeros(n, bool)
        (t if k in terminal_last else o)[-1] = True
        term.append(t)
        tout.append(o)
    total = sum(episode_lengths)
    return {
        "observations": np.concatenate(obs), "next_observations": np.concatenate(nxt),
        "actions": rng.uniform(-1, 1, size=(total, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=total).astype(np.float32),
        "terminals": np.concatenate(term), "timeouts": np.concatenate(tout),
    }
