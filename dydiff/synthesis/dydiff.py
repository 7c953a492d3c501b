"""DyDiff (Algorithm 1): ensemble rollout → M × (DM resample, policy relabel) → reward-model filter.
``iterations=0`` is the single-step (MBPO-style) ablation."""

from __future__ import annotations

import numpy as np
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
                 chunk: int = 4096, clip: bool = True, score_masked: bool = False, start_epoch: int = 0,
                 every: int = 1):
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
        self.score_masked = score_masked
        states = np.concatenate([ds.observations, ds.next_observations])
        self.box = R.Box(*(torch.as_tensor(x) for x in (states.min(0), states.max(0), ds.actions.min(0),
                                                         ds.actions.max(0)))) if clip else None

    def to(self, device) -> DyDiff:
        for m in (self.dynamics, self.reward, self.denoiser):
            if m is not None:
                m.to(device)
        self.starts = self.starts.to(device)
        if self.box is not None:
            self.box.to(device)
        return self

    @torch.no_grad()
    def generate(self, act, n: int, generator=None) -> tuple[Transitions, dict]:
        return self.pick(self.trajectories(act, n, generator), slice(None), generator)

    @torch.no_grad()
    def generate_many(self, acts: list, n: int, generator=None) -> list[tuple[Transitions, dict]]:
        """K policies' rounds as one batch (``synth.batched=true``): ``n`` trajectories for each act in
        ``acts``, rolled out in one ensemble rollout and refined by one DM call per iteration over K·n
        trajectories (rows k·n … (k+1)·n − 1 are policy k's: each act acts and relabels only its rows); then each
        policy's n are filtered on their own. One generator draws for all, so a seed's data is not its
        single-seed run's."""
        k = len(acts)

        def act(obs):
            return torch.cat([a(o) for a, o in zip(acts, obs.view(k, -1, obs.shape[-1]), strict=True)])

        tr = self.trajectories(act, k * n, generator)
        return [self.pick(tr, slice(i * n, (i + 1) * n), generator) for i in range(k)]

    @torch.no_grad()
    def trajectories(self, act, n: int, generator=None) -> dict:
        """Algorithm 1 lines 4-10 for ``n`` trajectories: the rollout, M refinements, predicted rewards and scores."""
        s0 = self.starts[torch.randint(len(self.starts), (n,), generator=generator, device=self.starts.device)]
        if self.box is not None:
            self.box.reset(n)
        states, actions = R.ensemble_rollout(self.dynamics, act, s0, self.horizon, generator,
                                             not self.ensemble_sample, self.box)
        self.notify(0, states)
        changes = []
        for m in range(1, self.iterations + 1):  # one iteration at a time: the same numbers as R.refine(M)
            states, actions, change = R.refine(self.denoiser, act, states, actions, 1, self.blend, generator,
                                               self.chunk, self.box)
            changes += change
            self.notify(m, states)
        done = self.task.terminal(states[:, 1:])
        keep = R.keep_mask(done)
        rewards = self.reward(states[:, :-1], actions)
        score = F.scores(rewards, keep if self.score_masked else None)  # Eq. 11: the whole horizon
        finite = torch.isfinite(states).flatten(1).all(1) & torch.isfinite(actions).flatten(1).all(1) & \
            torch.isfinite(score)
        if self.box is not None:
            finite &= ~self.box.nonfinite
        return dict(states=states, actions=actions, rewards=rewards, done=done, keep=keep, score=score,
                    finite=finite, changes=changes,
                    clipped=self.box.clipped_share if self.box is not None else 0.0)

    def pick(self, tr: dict, rows: slice, generator=None) -> tuple[Transitions, dict]:
        """Algorithm 1 line 11 over the trajectories ``rows`` of ``tr``: non-finite ones dropped, then the filter
        keeps ⌊η·n⌋; the kept transitions and the round's metrics."""
        states, actions, rewards, done, keep, score = (tr[x][rows] for x in ("states", "actions", "rewards",
                                                                           "done", "keep", "score"))
        n = len(score)
        ok = torch.nonzero(tr["finite"][rows]).squeeze(1)  # non-finite trajectories are dropped before the filter
        sel = ok[F.select(score[ok], min(int(self.keep * n), len(ok)), self.filter, self.temperature, generator)]
        out = R.to_transitions(states[sel], actions[sel], rewards[sel], done[sel], keep[sel])
        metrics = {"trajectories_kept": len(sel), "transitions": len(out.obs),
                   "predicted_return_all": float(score[ok].mean()), "predicted_return_kept": float(score[sel].mean()),
                   "cut_by_termination": float((done & keep).any(1).float().mean()),
                   "dropped_nonfinite": n - len(ok), "clipped_state_share": tr["clipped"]}
        metrics.update({f"state_change_iter{m + 1}": c for m, c in enumerate(tr["changes"])})
        return out, metrics
