"""The oracle of the paper's Fig. 1: the learning policy rolled out in the real simulator (``synth=real_env``)."""

from __future__ import annotations

import numpy as np
import torch

from dydiff.data.dataset import OfflineDataset
from dydiff.envs import locomotion
from dydiff.synthesis import filter as F
from dydiff.synthesis import refine as R
from dydiff.synthesis.base import Synthesizer, register
from dydiff.types import Transitions


@register("real_env")
class RealEnv(Synthesizer):
    """The oracle: L steps of the learning policy in the real simulator from dataset states (set-state hook,
    with the stored qpos/qvel where the dataset has them); true rewards and terminations."""

    def __init__(self, ds: OfflineDataset, pretrained=None, cache_dir=None, horizon: int = 64, filter: str = "none",
                 keep: float = 1.0, temperature: float = 0.05, deterministic: bool = True, envs: int = 64,
                 start_epoch: int = 0, every: int = 1):
        super().__init__(start_epoch, every)
        self.ds, self.task, self.horizon, self.filter, self.keep = ds, ds.task, horizon, filter, keep
        self.temperature, self.deterministic, self.n_envs, self.envs = temperature, deterministic, envs, []

    def rollout(self, act, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """States (B, L+1), actions (B, L), rewards (B, L) and terminations (B, L) from dataset rows."""
        task, L, ds = self.task, self.horizon, self.ds
        b = len(rows)
        states = np.zeros((b, L + 1, task.obs_dim), np.float32)
        actions = np.zeros((b, L, task.act_dim), np.float32)
        rewards, done = np.zeros((b, L), np.float32), np.zeros((b, L), bool)
        self.add_envs(1)
        step_many = getattr(self.envs[0].unwrapped, "step_many", None)
        if step_many is not None:  # D4RL's maze: all B starts in one simulator call a step (5-6x faster)
            x = ds.observations[rows].astype(np.float64)  # the maze's observation is its whole state
            states[:, 0] = x
            for t in range(L):
                actions[:, t] = act(torch.as_tensor(states[:, t])).cpu().numpy()
                x = step_many(x, actions[:, t])
                states[:, t + 1] = x
            rewards[:] = task.maze_reward(states[:, 1:])  # mazes never terminate
            return states, actions, rewards, done
        if locomotion.supports(self.envs[0]):  # Hopper, Walker2d, HalfCheetah: the same, 1.8x faster on Hopper
            qpos, qvel = ds.physics_states(rows, self.envs[0].unwrapped.model.nq)
            states[:, 0] = ds.observations[rows]
            for t in range(L):
                actions[:, t] = act(torch.as_tensor(states[:, t])).cpu().numpy()
                qpos, qvel, states[:, t + 1], rewards[:, t], done[:, t] = locomotion.step_many(
                    self.envs[0], qpos, qvel, actions[:, t], task.velocity_clip)
            return states, actions, rewards, done
        self.add_envs(min(self.n_envs, b))
        for lo in range(0, b, len(self.envs)):
            chunk = range(lo, min(lo + len(self.envs), b))
            for env, i in zip(self.envs, chunk, strict=False):
                ds.set_state(env, rows[i])
                states[i, 0] = ds.observations[rows[i]]
            for t in range(L):
                a = act(torch.as_tensor(states[chunk.start : chunk.stop, t]))
                actions[chunk.start : chunk.stop, t] = a.cpu().numpy()
                for env, i in zip(self.envs, chunk, strict=False):
                    states[i, t + 1], rewards[i, t], done[i, t] = task.step_transition(env, actions[i, t])
        return states, actions, rewards, done

    def add_envs(self, n: int) -> None:
        """Up to ``n`` simulator instances, the k-th reset with seed k."""
        while len(self.envs) < n:
            self.envs.append(self.task.make_env())
            self.envs[-1].reset(seed=len(self.envs))

    @torch.no_grad()
    def generate(self, act, n: int, generator=None) -> tuple[Transitions, dict]:
        dev = generator.device if generator is not None else torch.device("cpu")
        rows = torch.randint(len(self.ds.observations), (n,), generator=generator, device=dev).cpu().numpy()
        states, actions, rewards, done = (torch.as_tensor(x, device=dev) for x in self.rollout(act, rows))
        self.notify(0, states)
        keep = R.keep_mask(done)
        score = F.scores(rewards, keep)
        sel = F.select(score, int(self.keep * n), self.filter, self.temperature, generator)
        out = R.to_transitions(states[sel], actions[sel], rewards[sel], done[sel], keep[sel])
        return out, {"trajectories_kept": len(sel), "transitions": len(out.obs), "return_all": float(score.mean()),
                     "cut_by_termination": float((done & keep).any(1).float().mean())}

    def __del__(self):
        for env in self.envs:
            env.close()
