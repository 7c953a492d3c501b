"""The task registry: everything a stage needs to know about an environment, by task name.

A task maps to its Gymnasium env id and kwargs, observation conversion, evaluation episode length,
reference returns, termination function and how to put the simulator into a dataset state.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import gymnasium as gym
import numpy as np

from dydiff.envs import termination
from dydiff.envs.maze import EPISODE_STEPS, GOAL_CELLS, LAYOUTS, Maze


@dataclass(frozen=True)
class Task:
    name: str
    env_id: str
    obs_dim: int
    act_dim: int
    episode_length: int  # evaluation horizon
    ref_random: float  # reference returns (D4RL's; built-in datasets measure and store their own)
    ref_expert: float
    terminal_fn: str = "never"  # key of termination.TERMINATIONS
    velocity_clip: float | None = None  # the observation clips qvel to ±this (rebuilding state is lossy)
    maze: str | None = None  # layout key for maze tasks
    maze_frame: str | None = None  # mazes: d4rl (D4RL's maze2d env, envs/d4rl_maze.py) or gymnasium (PointMaze)
    env_kwargs: dict = field(default_factory=dict)

    @property
    def is_maze(self) -> bool:
        return self.maze is not None

    def terminal(self, next_obs):
        """done(next_obs) on de-normalised observations, numpy or torch."""
        return termination.TERMINATIONS[self.terminal_fn](next_obs)

    # ---- mazes -------------------------------------------------------------------------------
    @cached_property
    def grid(self) -> Maze:
        return Maze(LAYOUTS[self.maze], self.maze_frame)

    @cached_property
    def goal(self) -> np.ndarray:
        """The fixed evaluation goal (centre of D4RL's 'G' cell)."""
        return self.grid.cell_to_xy(GOAL_CELLS[self.maze])

    def maze_reward(self, obs: np.ndarray) -> np.ndarray:
        """D4RL's sparse maze2d reward: 1 within 0.5 of the evaluation goal (Gymnasium-Robotics uses 0.45).
        The live reward applies it to the next state; D4RL's datasets are relabelled on the current one."""
        return (np.linalg.norm(np.asarray(obs)[..., :2] - self.goal, axis=-1) <= 0.5).astype(np.float32)

    # ---- environment -------------------------------------------------------------------------
    def make_env(self, **kwargs) -> gym.Env:
        kw = {**self.env_kwargs, "max_episode_steps": self.episode_length, **kwargs}
        if self.maze_frame == "d4rl":
            import dydiff.envs.d4rl_maze  # noqa: F401 - registers dydiff/maze2d-*-v1
        elif self.is_maze:
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")  # and an import-time notice about Adroit envs
                import gymnasium_robotics

                gym.register_envs(gymnasium_robotics)
            kw = {
                "maze_map": self.grid.gym_map(GOAL_CELLS[self.maze]),
                "continuing_task": True,
                "reset_target": False,
                **kw,
            }
        return gym.make(self.env_id, **kw)

    def convert_obs(self, raw) -> np.ndarray:
        """Env observation → flat float32 vector (PointMaze: the 'observation' entry, (x, y, vx, vy))."""
        return np.asarray(raw["observation"] if isinstance(raw, dict) else raw, dtype=np.float32)

    def set_state(self, env: gym.Env, obs: np.ndarray, qpos=None, qvel=None) -> bool:
        """Put ``env`` into the state of a dataset observation. Returns whether that state is exact.

        Mazes: the observation is the full state (qpos ‖ qvel). Hopper/HalfCheetah/Walker2d: qpos = [0, obs[:nq−1]],
        qvel = the rest (x is free, so 0 is exact), unless the observation clipped a velocity: then only
        the stored ``qpos``/``qvel`` (``infos/qpos``, ``infos/qvel``) are exact.
        """
        u = env.unwrapped
        obs = np.asarray(obs, dtype=np.float64)
        if self.is_maze:
            self._point(env).set_state(obs[:2], obs[2:4])
            return True
        if qpos is not None and qvel is not None:
            u.set_state(np.asarray(qpos, np.float64), np.asarray(qvel, np.float64))
            return True
        qpos, qvel = self.physics_state(obs, u.model.nq)
        u.set_state(qpos, qvel)
        return self.velocity_clip is None or bool(np.all(np.abs(qvel) < self.velocity_clip))

    @staticmethod
    def physics_state(obs: np.ndarray, nq: int) -> tuple[np.ndarray, np.ndarray]:
        """Locomotion observations (..., obs_dim) → qpos (..., nq) = [0, obs[:nq−1]] and qvel = the rest, float64."""
        obs = np.asarray(obs, dtype=np.float64)
        return np.concatenate([np.zeros((*obs.shape[:-1], 1)), obs[..., : nq - 1]], -1), obs[..., nq - 1 :]

    def _point(self, env: gym.Env):
        """The object whose ``set_state(qpos, qvel)`` and ``step(action)`` move the point mass."""
        return env.unwrapped if self.maze_frame == "d4rl" else env.unwrapped.point_env

    def step_state(self, env: gym.Env, action: np.ndarray) -> np.ndarray:
        """Step a state-set env with ``action`` and return the next observation (no wrappers)."""
        return self.step_transition(env, action)[0]

    def step_transition(self, env: gym.Env, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """Step a state-set env (no wrappers): next observation, reward (mazes: D4RL's sparse reward) and
        termination."""
        u = env.unwrapped
        if self.is_maze:
            obs, *_ = self._point(env).step(np.asarray(action, np.float64))
            obs = self.convert_obs(obs)
            return obs, float(self.maze_reward(obs)), False
        obs, rew, term, *_ = u.step(np.asarray(action, np.float64))
        return self.convert_obs(obs), float(rew), bool(term)

    def normalized_score(self, ret, ref_random: float | None = None, ref_expert: float | None = None):
        """100·(R − R_random)/(R_expert − R_random)."""
        lo = self.ref_random if ref_random is None else ref_random
        hi = self.ref_expert if ref_expert is None else ref_expert
        return 100.0 * (np.asarray(ret) - lo) / (hi - lo)


def _maze(name: str, env_id: str, ref_random: float, ref_expert: float, frame: str) -> Task:
    maze = name.split("-")[1]
    return Task(name, env_id, 4, 2, EPISODE_STEPS[maze], ref_random, ref_expert, maze=maze, maze_frame=frame)


TASKS: dict[str, Task] = {
    # D4RL's maze2d-*-v1 (its env, its REF_MIN / REF_MAX scores, d4rl/pointmaze/__init__.py)
    "maze2d-umaze": _maze("maze2d-umaze", "dydiff/maze2d-umaze-v1", 23.85, 161.86, "d4rl"),
    "maze2d-medium": _maze("maze2d-medium", "dydiff/maze2d-medium-v1", 13.13, 277.39, "d4rl"),
    "maze2d-large": _maze("maze2d-large", "dydiff/maze2d-large-v1", 6.7, 273.99, "d4rl"),
    # The same layouts on Gymnasium-Robotics PointMaze-v3 (Minari's D4RL/pointmaze/* were regenerated on it);
    # D4RL's constants do not apply there: built-in pointmaze data measures and stores its own references.
    "pointmaze-umaze": _maze("pointmaze-umaze", "PointMaze_UMaze-v3", 23.85, 161.86, "gymnasium"),
    "pointmaze-medium": _maze("pointmaze-medium", "PointMaze_Medium-v3", 13.13, 277.39, "gymnasium"),
    "pointmaze-large": _maze("pointmaze-large", "PointMaze_Large-v3", 6.7, 273.99, "gymnasium"),
    "hopper": Task("hopper", "Hopper-v5", 11, 3, 1000, -20.272305, 3234.3, "hopper", velocity_clip=10.0),
    "halfcheetah": Task("halfcheetah", "HalfCheetah-v5", 17, 6, 1000, -280.178953, 12135.0),
    "walker2d": Task(
        "walker2d", "Walker2d-v5", 17, 6, 1000, 1.629008, 4592.3, "walker2d", velocity_clip=10.0
    ),
}


def get_task(name: str) -> Task:
    """Look up a task by name ('maze2d-umaze', 'hopper', …) or by a dataset name that starts with one."""
    if name in TASKS:
        return TASKS[name]
    for key in sorted(TASKS, key=len, reverse=True):
        if name.startswith(key) or name.startswith(f"builtin-{key}"):
            return TASKS[key]
    raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")


def task_from_minari_id(dataset_id: str) -> Task:
    """'mujoco/hopper/medium-v0' → hopper, 'D4RL/pointmaze/umaze-v2' → pointmaze-umaze (PointMaze-v3)."""
    parts = dataset_id.lower().split("/")
    for p in parts:
        if p in TASKS:
            return TASKS[p]
    if "pointmaze" in parts:
        size = parts[-1].split("-")[0]
        if f"pointmaze-{size}" in TASKS:
            return TASKS[f"pointmaze-{size}"]
    raise KeyError(
        f"cannot tell the task of Minari dataset {dataset_id!r}; pass task=<name> ({', '.join(TASKS)})"
    )
