"""Built-in maze2d datasets made as D4RL made them (``scripts/generation/generate_maze2d_datasets.py --noisy``,
then ``relabel_maze2d_rewards.py --relabel_type sparse``), and D4RL's reference protocol
(``scripts/reference_scores/maze2d_controller.py``).

One continuous run of the point mass: D4RL's waypoint controller drives to a random target (an empty or goal
cell plus U(±0.1)), N(0, 0.5²) noise is added to its action and the sum clipped to ±1. When the controller
reports the target solved, or after the evaluation horizon (300 / 600 / 800 steps), a new target is drawn, the
state is kept, and the step is marked a timeout. Rewards are relabelled sparse on the *current* state: 1 within
0.5 of the task's fixed evaluation goal. ``infos/qpos``, ``infos/qvel`` and ``infos/goal`` are stored.
"""

from __future__ import annotations

import numpy as np

from dydiff.data.dataset import OfflineDataset
from dydiff.envs.evaluation import evaluate, random_policy
from dydiff.envs.maze import WaypointController
from dydiff.envs.registry import Task
from dydiff.progress import track


def _random_target(maze, rng) -> np.ndarray:
    """D4RL's ``set_target()``: a uniform empty-or-goal cell plus U(±0.1) per coordinate."""
    cell = maze.free_cells[rng.integers(len(maze.free_cells))]
    return maze.cell_to_xy(np.asarray(cell) + rng.uniform(-0.1, 0.1, size=2))


def generate_maze_dataset(
    task: Task,
    size: int,
    seed: int = 0,
    action_noise: float = 0.5,
    jitter: float = 0.2,
    stale_obs: bool = False,
    progress: bool = True,
) -> OfflineDataset:
    """``size`` transitions of one continuous run; deterministic for ``seed``.

    ``stale_obs``: D4RL's generator does not advance its observation on a goal change (``if done: ... else:
    s = ns``), so the row after each timeout repeats the previous observation while the simulator has moved on.
    False (default) records the true state, so every row replays exactly; True reproduces D4RL's files.
    """
    rng = np.random.default_rng(seed)
    env = task.make_env()
    point, maze = task._point(env), task.grid
    ctrl = WaypointController(maze, rng=rng, jitter=jitter)
    obs = np.empty((size, 4), np.float32)
    act = np.empty((size, 2), np.float32)
    next_obs = np.empty((size, 4), np.float32)
    timeouts = np.zeros(size, bool)
    qpos, qvel, goal = np.empty((size, 2)), np.empty((size, 2)), np.empty((size, 2), np.float32)
    s = task.convert_obs(env.reset(seed=seed)[0])
    point.set_state(*np.split(s.astype(np.float64), 2))  # start at float32 precision
    target, steps_on_target = _random_target(maze, rng), 0
    for t in track(range(size), size, f"generating {task.name}", progress):
        a, done = ctrl.act(s[:2], s[2:], target)
        a = np.clip(a + action_noise * rng.standard_normal(2), -1.0, 1.0).astype(np.float32)
        done |= steps_on_target >= task.episode_length
        obs[t], act[t], goal[t], timeouts[t] = s, a, target, done
        qpos[t], qvel[t] = point.data.qpos, point.data.qvel
        raw, *_ = point.step(a.astype(np.float64))
        next_obs[t] = np.asarray(raw, np.float32)
        point.set_state(*np.split(next_obs[t].astype(np.float64), 2))  # the stored state is the state
        steps_on_target += 1
        if done:
            target, steps_on_target = _random_target(maze, rng), 0
        if not (done and stale_obs):  # stale: the next row records the old s, the simulator is at next_obs[t]
            s = next_obs[t]
    env.close()
    timeouts[-1] = True  # the run stops: a time limit, not a terminal
    arrays = {
        "observations": obs,
        "actions": act,
        "rewards": task.maze_reward(obs),  # relabel_maze2d_rewards.py: on the current state
        "next_observations": next_obs,
        "terminals": np.zeros(size, bool),
        "timeouts": timeouts,
    }
    return OfflineDataset.from_arrays(
        arrays, task, f"builtin:{task.name}", infos={"qpos": qpos, "qvel": qvel, "goal": goal}
    )


def controller_returns(task: Task, episodes: int = 100, seed: int = 0, persistent: bool = True) -> np.ndarray:
    """Returns of the noiseless waypoint controller steering to the fixed goal, over full-horizon episodes.

    ``persistent=True`` is D4RL's reference script: one controller for all episodes, one after another. It
    plans only when the target's cell changes, i.e. in the first episode; later episodes continue that plan's
    waypoint index from wherever they start. False plans each episode afresh (a controller per episode).
    """
    env = task.make_env()
    shared = WaypointController(task.grid, rng=np.random.default_rng(seed))
    returns = np.zeros(episodes)
    for i in range(episodes):
        ctrl = shared if persistent else WaypointController(task.grid, rng=np.random.default_rng(seed + i))
        raw, _ = env.reset(seed=seed + i)
        s, done = task.convert_obs(raw).astype(np.float64), False
        while not done:
            a, _ = ctrl.act(s[:2], s[2:], task.goal)
            raw, _, terminated, truncated, _ = env.step(a)
            s, done = task.convert_obs(raw).astype(np.float64), terminated or truncated
            returns[i] += task.maze_reward(s)
    env.close()
    return returns


def reference_returns(task: Task, episodes: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """D4RL's reference protocol: the full-horizon returns of the uniform random policy and, on mazes, of the
    noiseless controller (one persistent controller, as D4RL's script runs it), episodes seeded seed + i."""
    out = {"random": np.array(evaluate(random_policy(task, seed), task, episodes, seed).returns)}
    if task.is_maze:
        out["controller"] = controller_returns(task, episodes, seed)
    return out


def measure_references(task: Task, episodes: int = 100, seed: int = 0) -> tuple[float, float]:
    """The mean returns of ``reference_returns``: (random, controller)."""
    r = reference_returns(task, episodes, seed)
    return float(r["random"].mean()), float(r["controller"].mean())
