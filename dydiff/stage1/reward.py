"""The reward model of stage 1 (Eq. 10)."""

from __future__ import annotations

from dydiff.models.reward import RewardModel
from dydiff.stage1.base import SingleStepModule


class RewardModule(SingleStepModule):
    """r_ψ(s, a) with MSE (Eq. 10); stage 2 loads the checkpoint of the lowest holdout MSE."""

    name, checkpoint, keys = "reward", "best", ("obs", "act", "rew")

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 3, lr: float = 3e-4,
                 batch_size: int = 256, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.model = RewardModel(obs_dim, act_dim, hidden, layers)

    def training_step(self, step, batch_idx=None):
        d = self._train
        idx = self.indices(len(d["obs"]), (self.hparams.batch_size,))
        loss = self.model.loss(d["obs"][idx], d["act"][idx], d["rew"][idx])
        self.metric("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, step, batch_idx=None):
        d = self._holdout
        self.metric("val/mse", self.model.loss(d["obs"], d["act"], d["rew"]), prog_bar=True)
