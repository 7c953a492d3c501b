"""Stage-1 LightningModules: the trajectory DM, the dynamics ensemble, the reward model (and SynthER's DM).

Each module samples its own batches on the device from tensors given by ``attach_data`` (no per-sample
Dataset or collate): batch indices come from a generator seeded with (seed, rank, update), where ``updates``
is the module's own counter (saved in checkpoints), so a resumed run draws exactly the batches an
uninterrupted one would. The dataloader only counts steps.
"""

from __future__ import annotations

import math

import lightning as L
import torch

from dydiff.data.windows import gather_windows
from dydiff.diffusion import edm
from dydiff.diffusion.trajectory import TrajectoryModel
from dydiff.diffusion.transitions import TransitionModel
from dydiff.models.ensemble import DynamicsEnsemble
from dydiff.models.reward import RewardModel


class _Pretrain(L.LightningModule):
    """Shared plumbing: on-device data, seeded batch indices, Adam."""

    updates = 0  # training steps taken; seeds each step's batch

    def attach_data(self, train: dict[str, torch.Tensor], holdout: dict[str, torch.Tensor]) -> None:
        self._train, self._holdout = train, holdout

    def on_train_batch_end(self, *args) -> None:
        self.updates += 1

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["updates"] = self.updates

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.updates = checkpoint["updates"]

    def on_fit_start(self) -> None:
        move = lambda d: {k: v.to(self.device) for k, v in d.items()}  # noqa: E731
        self._train, self._holdout = move(self._train), move(self._holdout)

    def generator(self, salt: int = 0) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(self.hparams.seed * 1_000_003 + self.global_rank * 7919 + self.updates * 31 + salt)
        return g

    def indices(self, n: int, shape) -> torch.Tensor:
        return torch.randint(n, shape, generator=self.generator(), device=self.device)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def metric(self, name: str, value, prog_bar: bool = False) -> None:
        self.log(name, value, prog_bar=prog_bar, batch_size=1)  # batches here are step counters, not data


class DenoiserModule(_Pretrain):
    """EDM on windows (Eqs. 2-4). Use with ``EMAWeightAveraging``: validation and saved weights are EMA."""

    def __init__(self, obs_dim: int, act_dim: int, horizon: int, center: list, scale: list, kind: str = "edm",
                 network: str = "unet", network_kwargs: dict | None = None, sigma_data: float = 0.5,
                 p_mean: float = -1.2, p_std: float = 1.2, pad_value: float = -1.1, sampler: dict | None = None,
                 lr: float = 2e-4, batch_size: int = 256, seed: int = 0, val_sigmas: int = 8):
        super().__init__()
        self.save_hyperparameters()
        self.model = TrajectoryModel(obs_dim, act_dim, horizon, center, scale, kind, network, network_kwargs,
                                     sigma_data, p_mean, p_std, pad_value, sampler)

    def training_step(self, step, batch_idx=None):
        d = self._train  # rows, valid, starts: see data.windows.TrajectoryWindows
        idx = self.indices(len(d["starts"]), (self.hparams.batch_size,))
        x, valid = gather_windows(d["rows"], d["valid"], d["starts"][idx], self.hparams.horizon)
        loss, _ = self.model.loss(x, valid, self.generator(1))
        loss = loss.mean()
        self.metric("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, step, batch_idx=None):
        """Holdout loss at fixed σ bins (per-σ-bin denoising loss) with fixed noise: a deterministic metric."""
        x, valid = self._holdout["x"], self._holdout["valid"]
        g = torch.Generator(device=self.device).manual_seed(12345)
        if self.model.kind == "regressor":
            self.metric("val/loss", self.model.loss(x, valid)[0].mean(), prog_bar=True)
            return
        sigmas = torch.logspace(math.log10(0.01), math.log10(20.0), self.hparams.val_sigmas)
        total = 0.0
        for s in sigmas.tolist():
            noise = torch.randn(x.shape, generator=g, device=self.device)
            sigma = torch.full((len(x),), s, device=self.device)
            cond, loss = self.model.cond_mask.expand_as(x), self.model.loss_mask(valid)
            per = edm.edm_loss(self.model.denoise, x, cond, loss, sigma, noise, self.model.sigma_data).mean()
            self.metric(f"val_sigma/{s:.3g}", per)
            total += per / len(sigmas)
        self.metric("val/loss", total, prog_bar=True)


class DynamicsModule(_Pretrain):
    """MBPO ensemble (Eq. 5): each member trains on its own batch; elites chosen at every validation."""

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


class RewardModule(_Pretrain):
    """r_ψ(s, a) with MSE (Eq. 10)."""

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


class SynthERModule(_Pretrain):
    """SynthER's unconditional transition EDM (a fourth, optional stage-1 model: ``models=[...,synther]``).
    Use with ``EMAWeightAveraging`` like the trajectory DM."""

    def __init__(self, obs_dim: int, act_dim: int, center: list, scale: list, width: int = 1024, depth: int = 6,
                 sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2, sampler: dict | None = None,
                 lr: float = 3e-4, batch_size: int = 256, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.model = TransitionModel(obs_dim, act_dim, center, scale, width, depth, sigma_data, p_mean, p_std,
                                     sampler)

    def training_step(self, step, batch_idx=None):
        x = self._train["x"]
        loss = self.model.loss(x[self.indices(len(x), (self.hparams.batch_size,))], self.generator(1)).mean()
        self.metric("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, step, batch_idx=None):
        """Holdout EDM loss with fixed σ and noise draws: a deterministic metric."""
        g = torch.Generator(device=self.device).manual_seed(12345)
        self.metric("val/loss", self.model.loss(self._holdout["x"], g).mean(), prog_bar=True)


MODULES = {"denoiser": DenoiserModule, "dynamics": DynamicsModule, "reward": RewardModule,
           "synther": SynthERModule}
