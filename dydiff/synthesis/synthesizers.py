"""Where synthetic transitions come from, one class per row of the paper's comparison:

- ``DyDiff``: ensemble rollout → M × (DM resample, policy relabel) → reward-model filter (Algorithm 1).
  ``iterations=0`` is the single-step (MBPO-style) ablation.
- ``RealEnv``: the learning policy rolled out in the real simulator from dataset states (the Fig. 1 oracle).
- ``SynthER``: unconditional transition samples made once by a stage-1 EDM, optionally softmax-filtered.

A synthesizer's ``generate(act, n, generator)`` returns (Transitions in raw units, metrics); ``act(obs)`` is
the learning policy. The policy module calls it at the start of every ``every``-th epoch from ``start_epoch``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dydiff.data.dataset import OfflineDataset, Transitions
from dydiff.lightning.trainer import save_atomic
from dydiff.synthesis import refine as R


class Synthesizer:
    deterministic = True  # how the policy acts in rollouts
    rank, world = 0, 1  # set by the policy module under DDP

    def __init__(self, start_epoch: int = 0, every: int = 1):
        self.start_epoch, self.every = start_epoch, every

    def due(self, epoch: int) -> bool:
        return epoch >= self.start_epoch and (epoch - self.start_epoch) % self.every == 0

    def to(self, device) -> Synthesizer:
        return self


class DyDiff(Synthesizer):
    """Algorithm 1 with frozen stage-1 models (``dydiff.pretrain.Pretrained``)."""

    def __init__(self, pretrained, ds: OfflineDataset, horizon: int | None = None, iterations: int = 1,
                 blend: float = 0.5, filter: str = "softmax", keep: float = 0.6, temperature: float = 0.05,
                 deterministic: bool = True, ensemble_sample: bool = False, chunk: int = 4096, figure_every: int = 0,
                 **schedule):
        super().__init__(**schedule)
        if pretrained.dynamics is None or pretrained.reward is None:
            raise FileNotFoundError("DyDiff needs the stage-1 dynamics ensemble and reward model: run "
                                    "`python stages/pretrain.py` for this dataset")
        if iterations > 0 and pretrained.denoiser is None:
            raise FileNotFoundError("DyDiff with iterations > 0 needs the stage-1 trajectory model (denoiser)")
        self.dynamics, self.reward, self.denoiser = pretrained.dynamics, pretrained.reward, pretrained.denoiser
        self.horizon = self.denoiser.horizon if self.denoiser is not None else horizon
        if horizon is not None and self.horizon != horizon:
            raise ValueError(f"synth.horizon={horizon} but the stage-1 trajectory model was trained with "
                             f"L = {self.horizon}")
        self.task, self.starts = ds.task, torch.as_tensor(ds.start_states())
        self.iterations, self.blend, self.filter, self.keep = iterations, blend, filter, keep
        self.temperature, self.deterministic, self.ensemble_sample, self.chunk = (temperature, deterministic,
                                                                                  ensemble_sample, chunk)
        self.figure_every = figure_every  # rounds between maze-trajectory images (read by the policy module)
        self.record_xy = 0  # > 0: keep the (x, y) of that many trajectories per iteration in self.history
        self.history: list[np.ndarray] = []

    def to(self, device) -> DyDiff:
        for m in (self.dynamics, self.reward, self.denoiser):
            if m is not None:
                m.to(device)
        self.starts = self.starts.to(device)
        return self

    @torch.no_grad()
    def generate(self, act, n: int, generator=None) -> tuple[Transitions, dict]:
        s0 = self.starts[torch.randint(len(self.starts), (n,), generator=generator, device=self.starts.device)]
        states, actions = R.ensemble_rollout(self.dynamics, act, s0, self.horizon, generator,
                                             not self.ensemble_sample)
        maze = self.task.grid if self.task.is_maze else None
        legal, changes, self.history = [], [], []
        for m in range(self.iterations + 1):  # one iteration at a time: the same numbers as R.refine(M)
            if m:
                states, actions, change = R.refine(self.denoiser, act, states, actions, 1, self.blend, generator,
                                                   self.chunk)
                changes += change
            if maze is not None:  # Fig. 9's count, every round: trajectories with no state inside a wall
                xy = states[..., :2].float().cpu().numpy()
                legal.append(float(maze.legal(xy[:, 1:]).mean()))
                if self.record_xy:
                    self.history.append(xy[: self.record_xy])
        ok = ~R.padded_steps(self.denoiser, states) if self.iterations else torch.ones_like(states[..., 0], dtype=bool)
        valid, done = ok[:, :-1] & ok[:, 1:], self.task.terminal(states[:, 1:])
        keep = R.keep_mask(valid, done)
        rewards = self.reward(states[:, :-1], actions)
        score = R.scores(rewards, keep)
        sel = R.select(score, int(self.keep * n), self.filter, self.temperature, generator)
        out = R.to_transitions(states[sel], actions[sel], rewards[sel], done[sel], keep[sel])
        metrics = {"trajectories_kept": len(sel), "transitions": len(out.obs),
                   "predicted_return_all": float(score.mean()), "predicted_return_kept": float(score[sel].mean()),
                   "cut_by_termination": float((done & keep).any(1).float().mean()),
                   "cut_by_padding": float((~valid).any(1).float().mean())}
        metrics.update({f"state_change_iter{m + 1}": c for m, c in enumerate(changes)})
        metrics.update({f"legal_share_iter{m}": x for m, x in enumerate(legal)})
        return out, metrics


class RealEnv(Synthesizer):
    """The oracle: L steps of the learning policy in the real simulator from dataset states (set-state hook,
    with the stored qpos/qvel where the dataset has them); true rewards and terminations."""

    def __init__(self, ds: OfflineDataset, horizon: int = 64, filter: str = "none", keep: float = 1.0,
                 temperature: float = 0.05, deterministic: bool = True, envs: int = 64, **schedule):
        super().__init__(**schedule)
        self.ds, self.task, self.horizon, self.filter, self.keep = ds, ds.task, horizon, filter, keep
        self.temperature, self.deterministic, self.n_envs, self.envs = temperature, deterministic, envs, []

    def rollout(self, act, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """States (B, L+1), actions (B, L), rewards (B, L) and terminations (B, L) from dataset rows."""
        task, L, ds = self.task, self.horizon, self.ds
        b = len(rows)
        states = np.zeros((b, L + 1, task.obs_dim), np.float32)
        actions = np.zeros((b, L, task.act_dim), np.float32)
        rewards, done = np.zeros((b, L), np.float32), np.zeros((b, L), bool)
        while len(self.envs) < min(self.n_envs, b):
            self.envs.append(task.make_env())
            self.envs[-1].reset(seed=len(self.envs))
        for lo in range(0, b, len(self.envs)):
            chunk = range(lo, min(lo + len(self.envs), b))
            for env, i in zip(self.envs, chunk, strict=False):
                q = (ds.infos["qpos"][rows[i]], ds.infos["qvel"][rows[i]]) if "qpos" in ds.infos else (None, None)
                task.set_state(env, ds.observations[rows[i]], *q)
                states[i, 0] = ds.observations[rows[i]]
            for t in range(L):
                a = act(torch.as_tensor(states[chunk.start : chunk.stop, t]))
                actions[chunk.start : chunk.stop, t] = a.cpu().numpy()
                for env, i in zip(self.envs, chunk, strict=False):
                    states[i, t + 1], rewards[i, t], done[i, t] = task.step_transition(env, actions[i, t])
        return states, actions, rewards, done

    @torch.no_grad()
    def generate(self, act, n: int, generator=None) -> tuple[Transitions, dict]:
        dev = generator.device if generator is not None else torch.device("cpu")
        rows = torch.randint(len(self.ds.observations), (n,), generator=generator, device=dev).cpu().numpy()
        states, actions, rewards, done = (torch.as_tensor(x, device=dev) for x in self.rollout(act, rows))
        keep = R.keep_mask(torch.ones_like(done), done)
        score = R.scores(rewards, keep)
        sel = R.select(score, int(self.keep * n), self.filter, self.temperature, generator)
        out = R.to_transitions(states[sel], actions[sel], rewards[sel], done[sel], keep[sel])
        return out, {"trajectories_kept": len(sel), "transitions": len(out.obs), "return_all": float(score.mean()),
                     "cut_by_termination": float((done & keep).any(1).float().mean())}

    def __del__(self):
        for env in self.envs:
            env.close()


class SynthER(Synthesizer):
    """SynthER (and SynthER-f with ``filter='softmax'``): ``samples`` transitions from the stage-1 transition
    EDM, generated once, at ``start_epoch``, and cached in ``cache_dir``; SynthER-f keeps ⌊η·samples⌋ of them
    by the softmax filter on the reward model's prediction r̂(s, a) (transition level, paper Table 6)."""

    def __init__(self, pretrained, cache_dir, samples: int = 5_000_000, filter: str = "none", keep: float = 1.0,
                 temperature: float = 0.05, chunk: int = 65536, seed: int = 0, start_epoch: int = 0, **_schedule):
        super().__init__(start_epoch, 1)
        if pretrained.synther is None:
            raise FileNotFoundError("synth=synther needs SynthER's stage-1 model: run `python stages/pretrain.py "
                                    "models=[synther]` for this dataset")
        if filter != "none" and pretrained.reward is None:
            raise FileNotFoundError("SynthER-f filters with the stage-1 reward model: run stages/pretrain.py")
        self.model, self.reward, self.cache_dir = pretrained.synther, pretrained.reward, Path(cache_dir)
        self.samples, self.filter, self.keep, self.temperature = samples, filter, keep, temperature
        self.chunk, self.seed = chunk, seed

    def due(self, epoch: int) -> bool:
        return epoch == self.start_epoch  # once; the buffer (saved with the checkpoint) holds them after

    def to(self, device) -> SynthER:
        self.model.to(device)
        if self.reward is not None:
            self.reward.to(device)
        return self

    def cached(self, device) -> Transitions:
        """The unfiltered samples: loaded from the cache, or generated and cached (atomically)."""
        n = -(-self.samples // self.world)  # under DDP each rank makes (and caches) its share
        part = f"-rank{self.rank}of{self.world}" if self.world > 1 else ""
        path = self.cache_dir / f"samples-{self.samples}-seed{self.seed}{part}.pt"
        if path.exists():
            return Transitions(*torch.load(path, map_location=device, weights_only=True))
        g = torch.Generator(device=device).manual_seed(self.seed * 1000 + self.rank)
        t = self.model.sample(n, g, self.chunk)
        save_atomic(tuple(x.cpu() for x in t), path)
        return t

    @torch.no_grad()
    def generate(self, act, n: int, generator=None) -> tuple[Transitions, dict]:
        t = self.cached(self.model.center.device)
        metrics = {"generated": len(t.obs), "reward_mean_all": float(t.rew.mean())}
        if self.filter != "none":
            score = self.reward(t.obs, t.act)
            sel = R.select(score, int(self.keep * len(t.obs)), self.filter, self.temperature, generator)
            t = Transitions(*(x[sel] for x in t))
            metrics.update(predicted_reward_all=float(score.mean()), predicted_reward_kept=float(score[sel].mean()))
        metrics["transitions"] = len(t.obs)
        return t, metrics
