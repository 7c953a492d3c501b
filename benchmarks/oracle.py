"""The real-environment oracle's rollouts (`synth=real_env`): `RealEnv.rollout`, which steps every start at once (one
MuJoCo rollout call a step: MazeEnv.step_many on D4RL's mazes, envs/locomotion.step_many on Hopper, Walker2d and
HalfCheetah), against the plain loop it replaced (64 envs stepped in lock-step, one Python `step` each), with the same
policy (TD3+BC's actor, untrained) and starts: a maze's built-in data, or a locomotion task's random-policy rollouts.
Prints both times, their ratio and the largest state difference between the two.

    OMP_NUM_THREADS=1 python benchmarks/oracle.py
    OMP_NUM_THREADS=1 python benchmarks/oracle.py --task maze2d-large --trajectories 2048 --horizon 64 --repeats 3
    OMP_NUM_THREADS=1 python benchmarks/oracle.py --task hopper
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dydiff.algos.networks import mlp  # noqa: E402
from dydiff.builtin.locomotion import collect, to_dataset  # noqa: E402
from dydiff.builtin.maze import generate_maze_dataset  # noqa: E402
from dydiff.envs.evaluation import random_policy  # noqa: E402
from dydiff.envs.registry import get_task  # noqa: E402
from dydiff.synthesis.real_env import RealEnv  # noqa: E402


def lock_step(ds, act, rows, horizon, n_envs=64):
    """The plain loop: n_envs simulators, each stepped in Python, the policy called once per step over them."""
    task = ds.task
    envs = [task.make_env() for _ in range(n_envs)]
    for k, env in enumerate(envs):
        env.reset(seed=k + 1)
    states = np.zeros((len(rows), horizon + 1, task.obs_dim), np.float32)
    for lo in range(0, len(rows), n_envs):
        idx = range(lo, min(lo + n_envs, len(rows)))
        for env, i in zip(envs, idx, strict=False):
            ds.set_state(env, rows[i])
            states[i, 0] = ds.observations[rows[i]]
        for t in range(horizon):
            a = act(torch.as_tensor(states[idx.start : idx.stop, t])).numpy()
            for env, i, ai in zip(envs, idx, a, strict=False):
                states[i, t + 1] = task.step_transition(env, ai)[0]
    return states


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="maze2d-umaze", help="a maze2d-* or hopper, walker2d, halfcheetah")
    p.add_argument("--trajectories", type=int, default=2048)
    p.add_argument("--horizon", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.manual_seed(0)
    task = get_task(a.task)
    ds = generate_maze_dataset(task, 20_000, seed=0, progress=False) if task.is_maze else \
        to_dataset(collect(task, random_policy(task), 20_000, progress=False), task, "random", 0.0, 1.0)
    net = mlp(ds.task.obs_dim, ds.task.act_dim, 256, 2).eval()
    act = torch.no_grad()(lambda s: torch.tanh(net(s)))
    rows = np.random.default_rng(0).integers(len(ds.observations), size=a.trajectories)
    oracle = RealEnv(ds, horizon=a.horizon)
    times = {"RealEnv.rollout (step_many)": [], "plain loop (64 envs, lock-step)": []}
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        ours = oracle.rollout(act, rows)[0]
        t1 = time.perf_counter()
        plain = lock_step(ds, act, rows, a.horizon)
        t2 = time.perf_counter()
        times["RealEnv.rollout (step_many)"].append(t1 - t0)
        times["plain loop (64 envs, lock-step)"].append(t2 - t1)
    print(f"{a.task}: {a.trajectories} trajectories × {a.horizon} steps, {torch.get_num_threads()} thread(s), "
          f"best of {a.repeats}")
    for k, v in times.items():
        print(f"  {k:<34} {min(v):7.2f} s")
    best = [min(v) for v in times.values()]
    print(f"  speed-up {best[1] / best[0]:.1f}x; largest state difference {np.abs(ours - plain).max():.2e}")


if __name__ == "__main__":
    main()
