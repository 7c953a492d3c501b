"""Evaluation of any ``act(obs_batch) -> action_batch`` callable in the real Gymnasium environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from dydiff.envs.registry import Task


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    scores: list[float]

    @property
    def return_mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def return_std(self) -> float:
        return float(np.std(self.returns))

    @property
    def score_mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def score_std(self) -> float:
        return float(np.std(self.scores))

    def summary(self) -> dict:
        return {
            "return_mean": self.return_mean,
            "return_std": self.return_std,
            "score_mean": self.score_mean,
            "score_std": self.score_std,
            "length_mean": float(np.mean(self.lengths)),
            **asdict(self),
        }


def evaluate(
    act: Callable[[np.ndarray], np.ndarray],
    task: Task,
    episodes: int = 10,
    seed: int = 0,
    ref_random: float | None = None,
    ref_expert: float | None = None,
    seeds: list[int] | None = None,
) -> EvalResult:
    """Run ``episodes`` episodes in lock-step, one env each, seeded ``seed + i``.

    ``act`` gets the (episodes, obs_dim) batch of current observations and returns (episodes, act_dim);
    finished episodes keep their last observation and are not stepped. Maze rewards are D4RL's sparse
    reward on the fixed goal. Scores use the given references, else the task's. ``seeds`` (one per episode)
    replaces ``seed + i``.
    """
    seeds = list(seeds) if seeds is not None else [seed + i for i in range(episodes)]
    episodes = len(seeds)
    if episodes == 0:
        return EvalResult([], [], [])
    envs = [task.make_env() for _ in range(episodes)]
    obs = np.stack([task.convert_obs(env.reset(seed=s)[0]) for s, env in zip(seeds, envs, strict=True)])
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=int)
    active = np.ones(episodes, dtype=bool)
    while active.any():
        actions = np.asarray(act(obs), dtype=np.float32).reshape(episodes, task.act_dim)
        for i in np.flatnonzero(active):
            raw, reward, terminated, truncated, _ = envs[i].step(actions[i])
            obs[i] = task.convert_obs(raw)
            returns[i] += task.maze_reward(obs[i]) if task.is_maze else reward
            lengths[i] += 1
            active[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    scores = task.normalized_score(returns, ref_random, ref_expert)
    return EvalResult(returns.tolist(), lengths.tolist(), np.asarray(scores).tolist())


def random_policy(task: Task, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Uniform random actions in [−1, 1] (every task here has that action box)."""
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1.0, 1.0, size=(len(obs), task.act_dim))
