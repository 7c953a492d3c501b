"""The dynamics ensemble of stage 1 (Eq. 5)."""

from __future__ import annotations

import torch

from dydiff.models.ensemble import DynamicsEnsemble
from dydiff.stage1.base import SingleStepModule


class DynamicsModule(SingleStepModule):
    """MBPO ensemble (Eq. 5): each member trains on its own batch; elites chosen at every validation; stage 2
    loads the checkpoint of the lowest holdout MSE."""

    name, checkpoint, keys = "dynamics", "best", ("obs", "act", "next_obs")

    def __init__(self, obs_dim: int, act_dim: int, members: int = 7, elites: int = 5, hidden: int = 200,
                 layers: int = 4, weight_decay: tuple = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4), lr: float = 1e-3,
                 batch_size: int = 256, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.model = DynamicsEnsemble(obs_dim, act_dim, members, elites, hidden, layers, tuple(weight_decay))

    def training_step(self, step, batch_idx=None):
        d = self._train
        idx = self.indices(len(d["obs"]), (self.hparams.members, self.hparams.batch_size))
        loss = self.model.loss(d["obs"][idx], d["act"][idx], d["next_obs"][idx])
        self.metric("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, step, batch_idx=None):
        d = self._holdout
        mse = self.model.member_mse(d["obs"], d["act"], d["next_obs"])
        self.model.select_elites(mse)
        self.metric("val/mse", mse.mean(), prog_bar=True)
        self.metric("val/mse_elites", mse[self.model.elites].mean())
        mean, logvar = self.model(d["obs"], d["act"])
        nll = (((mean - (d["next_obs"] - d["obs"])) ** 2) * torch.exp(-logvar) + logvar).mean()
        self.metric("val/nll", nll)
