"""DyDiff (Algorithm 1): ensemble rollout → M × (DM resample, policy relabel) → reward-model filter.
``iterations=0`` is the single-step (MBPO-style) ablation."""

from __future__ import annotations

import torch

from dydiff.data.dataset import OfflineDataset
from dydiff.synthesis import filter as F
from dydiff.synthesis import refine as R
from dydiff.synthesis.base import Synthesizer, register
from dydiff.types import Transitions


@register("dydiff")
class DyDiff(Synthesizer):
    """Algorithm 1 with frozen stage-1 models (``dydiff.checkpoints.Pretrained``)."""

    needs = ("denoiser", "dynamics", "reward")

    def __init__(self, ds: OfflineDataset, pretrained, cache_dir=None, horizon: int | None = None,
                 iterations: int = 1, blend: float = 0.5, filter: str = "softmax", keep: float = 0.6,
                 temperature: float = 0.05, deterministic: bool = True, ensemble_sample: bool = False,
                 chunk: int = 4096, start_epoch: int = 0, every: int = 1):
        super().__init__(start_epoch, every)
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
        self.notify(0, states)
        changes = []
        for m in range(1, self.iterations + 1):  # one iteration at a time: the same numbers as R.refine(M)
            states, actions, change = R.refine(self.denoiser, act, states, actions, 1, self.blend, generator,
                                               self.chunk)
            changes += change
            self.notify(m, states)
        ok = ~R.padded_steps(self.denoiser, states) if self.iterations else torch.ones_like(states[..., 0], dtype=bool)
        valid, done = ok[:, :-1] & ok[:, 1:], self.task.terminal(states[:, 1:])
        keep = R.keep_mask(valid, done)
        rewards = self.reward(states[:, :-1], actions)
        score = F.scores(rewards, keep)
        sel = F.select(score, int(self.keep * n), self.filter, self.temperature, generator)
        out = R.to_transitions(states[sel], actions[sel], rewards[sel], done[sel], keep[sel])
        metrics = {"trajectories_kept": len(sel), "transitions": len(out.obs),
                   "predicted_return_all": float(score.mean()), "predicted_return_kept": float(score[sel].mean()),
                   "cut_by_termination": float((done & keep).any(1).float().mean()),
                   "cut_by_padding": float((~valid).any(1).float().mean())}
        metrics.update({f"state_change_iter{m + 1}": c for m, c in enumerate(changes)})
        return out, metrics
