"""Built-in maze2d datasets on Gymnasium-Robotics PointMaze, following D4RL's maze2d recipe.

One continuous run of the point mass: a waypoint controller (BFS over the grid, PD control
10·(waypoint − pos) − 1·vel) drives to a random goal cell (centre + uniform jitter), N(0, 0.5²) action
noise is added and the action clipped; on arrival a new goal is drawn and the step is marked a timeout.
Rewards are relabelled sparse: 1 where the next position is within 0.5 of the task's fixed evaluation goal.
"""

from __future__ import annotations

import numpy as np

from dydiff.data.dataset import OfflineDataset
from dydiff.envs.evaluation import evaluate, random_policy
from dydiff.envs.maze import WaypointController
from dydiff.envs.registry import Task
from dydiff.progress import track


def generate_maze_dataset(
    task: Task,
    size: int,
    seed: int = 0,
    action_noise: float = 0.5,
    jitter: float = 0.1,
    max_steps_per_goal: int | None = None,
    progress: bool = True,
) -> OfflineDataset:
    """``size`` transitions of one continuous run; deterministic for ``seed``.

    A goal not reached within ``max_steps_per_goal`` (default: the evaluation horizon) is replaced too.
    """
    rng = np.random.default_rng(seed)
    env = task.make_env()
    raw, _ = env.reset(seed=seed)
    point = env.unwrapped.point_env
    maze = task.grid
    max_steps_per_goal = max_steps_per_goal or task.episode_length
    ctrl = WaypointController(maze, jitter=jitter, rng=rng)

    def new_goal(pos):
        cell = maze.free_cells[rng.integers(len(maze.free_cells))]
        ctrl.set_target(pos, maze.cell_to_xy(cell) + rng.uniform(-jitter, jitter, size=2))

    obs = np.empty((size, 4), np.float32)
    act = np.empty((size, 2), np.float32)
    next_obs = np.empty((size, 4), np.float32)
    timeouts = np.zeros(size, bool)
    qpos, qvel, goal = np.empty((size, 2)), np.empty((size, 2)), np.empty((size, 2), np.float32)
    s = task.convert_obs(raw)
    point.set_state(s[:2].astype(np.float64), np.zeros(2))  # start at rest, at float32 precision
    s = np.concatenate([point.data.qpos, point.data.qvel]).astype(np.float32)
    new_goal(s[:2])
    steps_on_goal = 0
    for t in track(range(size), size, f"generating {task.name}", progress):
        a, reached = ctrl.act(s[:2].astype(np.float64), s[2:].astype(np.float64))
        a = np.clip(a + action_noise * rng.standard_normal(2), -1.0, 1.0).astype(np.float32)
        obs[t], act[t], goal[t] = s, a, ctrl.target
        qpos[t], qvel[t] = point.data.qpos, point.data.qvel
        raw, *_ = point.step(a.astype(np.float64))
        s = next_obs[t] = raw.astype(np.float32)
        point.set_state(s[:2].astype(np.float64), s[2:].astype(np.float64))  # the stored state is the state
        steps_on_goal += 1
        if reached or steps_on_goal >= max_steps_per_goal:
            timeouts[t], steps_on_goal = True, 0
            new_goal(s[:2])
    env.close()
    timeouts[-1] = True  # the run stops: a time limit, not a terminal
    arrays = {
        "observations": obs,
        "actions": act,
        "rewards": task.maze_reward(next_obs),
        "next_observations": next_obs,
        "terminals": np.zeros(size, bool),
        "timeouts": timeouts,
    }
    return OfflineDataset.from_arrays(
        arrays, task, f"builtin:{task.name}", infos={"qpos": qpos, "qvel": qvel, "goal": goal}
    )


def expert_policy(task: Task, episodes: int):
    """The noiseless waypoint controller steering to the fixed evaluation goal, batched over episodes."""
    ctrls = [WaypointController(task.grid) for _ in range(episodes)]

    def act(obs: np.ndarray) -> np.ndarray:
        out = np.empty((len(obs), 2))
        for i, (c, o) in enumerate(zip(ctrls, obs, strict=True)):
            o = o.astype(np.float64)
            if c.target is None:
                c.set_target(o[:2], task.goal)
            out[i] = c.act(o[:2], o[2:])[0]
        return out

    return act


def measure_references(task: Task, episodes: int = 50, seed: int = 10_000) -> tuple[float, float]:
    """Mean evaluation returns of the uniform random policy and of the noiseless controller (expert)."""
    random_ret = evaluate(random_policy(task, seed), task, episodes, seed).return_mean
    expert_ret = evaluate(expert_policy(task, episodes), task, episodes, seed).return_mean
    return random_ret, expert_ret
