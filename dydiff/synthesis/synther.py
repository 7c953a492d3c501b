"""SynthER (Lu et al., 2023) and SynthER-f: unconditional transition samples from a stage-1 EDM."""

from __future__ import annotations

from pathlib import Path

import torch

from dydiff.data.dataset import OfflineDataset
from dydiff.io import load_or_discard, locked, save_atomic
from dydiff.progress import track
from dydiff.synthesis import filter as F
from dydiff.synthesis.base import Synthesizer, register
from dydiff.types import Transitions


def sample_shown(model, n: int, generator: torch.Generator, chunk: int) -> Transitions:
    """``model.sample(n, generator, chunk)``, the same draws in the same order, one chunk at a time with a bar (a line
    per chunk in a log): the one-off 200k samples take ~10 minutes a seed on a CPU."""
    parts = [model.sample(min(chunk, n - lo), generator, chunk)
             for lo in track(range(0, n, chunk), -(-n // chunk), f"SynthER: sampling {n} transitions")]
    return Transitions(*(torch.cat(x) for x in zip(*parts, strict=True)))


@register("synther", "synther_filtered")
class SynthER(Synthesizer):
    """``n`` transitions (this rank's share of ``num_trajectories``, SynthER's sample count) from the stage-1
    transition EDM, generated once, at ``start_epoch``, and cached in ``cache_dir`` under the round generator's
    seed (so the same run seed and rank reuse them); SynthER-f keeps ⌊η·n⌋ of them by the softmax filter on the
    reward model's prediction r̂(s, a) (transition level, paper Table 6)."""

    needs = ("reward", "synther")

    def __init__(self, ds: OfflineDataset, pretrained, cache_dir=None, filter: str = "none", keep: float = 1.0,
                 temperature: float = 0.05, chunk: int = 65536, start_epoch: int = 0):
        super().__init__(start_epoch, 1)
        if pretrained.synther is None:
            raise FileNotFoundError("synth=synther needs SynthER's stage-1 model: run `python stages/pretrain.py "
                                    "models=[synther]` for this dataset")
        if filter != "none" and pretrained.reward is None:
            raise FileNotFoundError("SynthER-f filters with the stage-1 reward model: run stages/pretrain.py")
        self.model, self.reward = pretrained.synther, pretrained.reward
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.filter, self.keep, self.temperature, self.chunk = filter, keep, temperature, chunk

    def due(self, epoch: int) -> bool:
        return epoch == self.start_epoch  # once; the buffer (saved with the checkpoint) holds them after

    def to(self, device) -> SynthER:
        self.model.to(device)
        if self.reward is not None:
            self.reward.to(device)
        return self

    def cached(self, n: int, generator: torch.Generator) -> Transitions:
        """The unfiltered samples: loaded from the cache, or generated and cached (atomically)."""
        if self.cache_dir is None:
            return self.model.sample(n, generator, self.chunk)
        path = self.cache_dir / f"samples-{n}-g{generator.initial_seed()}.pt"
        with locked(path):  # runs of several algorithms with one seed share the samples: one process makes them
            if (saved := load_or_discard(path, self.model.center.device)) is not None:
                return Transitions(*saved)
            t = sample_shown(self.model, n, generator, self.chunk)
            save_atomic(tuple(x.cpu() for x in t), path)
            return t

    @torch.no_grad()
    def generate(self, act, n: int, generator=None) -> tuple[Transitions, dict]:
        generator = generator if generator is not None else torch.Generator(self.model.center.device).manual_seed(0)
        # the filter's draws come from the round generator's state before sampling, so that a run which loads
        # cached samples (the generator not advanced) selects what the run that made them selected
        pick = torch.Generator(generator.device).set_state(generator.get_state())
        t = self.cached(n, generator)
        metrics = {"generated": len(t.obs), "reward_mean_all": float(t.rew.mean())}
        if self.filter != "none":
            score = self.reward(t.obs, t.act)
            sel = F.select(score, int(self.keep * len(t.obs)), self.filter, self.temperature, pick)
            t = Transitions(*(x[sel] for x in t))
            metrics.update(predicted_reward_all=float(score.mean()), predicted_reward_kept=float(score[sel].mean()))
        metrics["transitions"] = len(t.obs)
        return t, metrics
