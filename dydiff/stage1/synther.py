"""SynthER's transition DM: an optional fourth stage-1 model (``models=[denoiser,dynamics,reward,synther]``)."""

from __future__ import annotations

import torch

from dydiff.data.dataset import OfflineDataset
from dydiff.diffusion.transitions import TransitionModel
from dydiff.stage1.base import Stage1Data, Stage1Module


def synther_normalizer(ds: OfflineDataset) -> tuple[list, list]:
    """Per-dimension mean and std (+1e-3) of the packed transitions (s, a, r, s', done)."""
    x = ds.transitions().pack().double()
    return x.mean(0).tolist(), (x.std(0) + 1e-3).tolist()


class SynthERModule(Stage1Module):
    """SynthER's unconditional transition EDM. Use with ``EMAWeightAveraging`` like the trajectory DM: stage 2
    loads the last (EMA) checkpoint."""

    name, checkpoint = "synther", "last"

    def __init__(self, obs_dim: int, act_dim: int, center: list, scale: list, width: int = 1024, depth: int = 6,
                 sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2, sampler: dict | None = None,
                 lr: float = 3e-4, batch_size: int = 256, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.model = TransitionModel(obs_dim, act_dim, center, scale, width, depth, sigma_data, p_mean, p_std,
                                     sampler)

    @classmethod
    def build(cls, data: Stage1Data, **kwargs) -> SynthERModule:
        center, scale = synther_normalizer(data.ds)
        return cls(**data.dims, center=center, scale=scale, seed=data.seed, **kwargs)

    @staticmethod
    def data_view(data: Stage1Data) -> tuple[dict, dict]:
        """z-scored (s, a, r, s', done) rows as one-row windows."""
        center, scale = synther_normalizer(data.ds)
        tr, ho = data.transition_split()
        x = ((data.ds.transitions().pack() - torch.tensor(center)) / torch.tensor(scale))[:, None]
        return {"x": x[tr]}, {"x": x[ho][: data.val_windows]}

    def training_step(self, step, batch_idx=None):
        x = self._train["x"]
        loss = self.model.loss(x[self.indices(len(x), (self.hparams.batch_size,))], self.generator(1)).mean()
        self.metric("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, step, batch_idx=None):
        """Holdout EDM loss with fixed σ and noise draws: a deterministic metric."""
        g = torch.Generator(device=self.device).manual_seed(12345)
        self.metric("val/loss", self.model.loss(self._holdout["x"], g).mean(), prog_bar=True)
