"""The trajectory DM of stage 1 (Eqs. 2-4): EDM (or the regressor, or the residual EDM) on normalised windows.

``kind='residual'`` trains in two phases within one run (CorrDiff's recipe): the first ``mean_steps`` updates
train the regressor μ alone (MSE); at update ``mean_steps`` μ is frozen and ρ is measured on ``residual_windows``
training windows drawn with a rank-independent generator; the remaining updates train the residual EDM. The
phase follows the update counter, so a resumed run takes the same path.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dydiff.data.windows import gather_windows
from dydiff.diffusion import edm
from dydiff.diffusion.trajectory import TrajectoryModel
from dydiff.stage1.base import Stage1Data, Stage1Module
from dydiff.types import stream_seed


class DenoiserModule(Stage1Module):
    """EDM on windows (Eqs. 2-4). Use with ``EMAWeightAveraging``: validation and saved weights are EMA, so stage 2
    loads the last checkpoint."""

    name, checkpoint, mixed_precision = "denoiser", "last", True

    def __init__(self, obs_dim: int, act_dim: int, horizon: int, center: list, scale: list, kind: str = "edm",
                 network: str = "unet", network_kwargs: dict | None = None, sigma_data: float = 0.5,
                 p_mean: float = -1.2, p_std: float = 1.2, pad_value: float = -1.1, sampler: dict | None = None,
                 lr: float = 2e-4, batch_size: int = 256, seed: int = 0, val_sigmas: int = 8,
                 mean_steps: int = 0, residual_scale: str = "entry", residual_windows: int = 8192):
        super().__init__()
        if kind == "residual" and not (isinstance(mean_steps, int) and mean_steps >= 1):
            raise ValueError(f"mean_steps={mean_steps!r}: kind=residual needs the regressor phase's length, "
                             "an integer ≥ 1 (denoiser.module.mean_steps)")
        self.save_hyperparameters()
        self.model = TrajectoryModel(obs_dim, act_dim, horizon, center, scale, kind, network, network_kwargs,
                                     sigma_data, p_mean, p_std, pad_value, sampler, residual_scale)

    @classmethod
    def build(cls, data: Stage1Data, **kwargs) -> DenoiserModule:
        n = data.windows.normalizer
        return cls(**data.dims, horizon=data.horizon, center=n.center.tolist(), scale=n.scale.tolist(),
                   pad_value=data.pad_value, seed=data.seed, **kwargs)

    @staticmethod
    def data_view(data: Stage1Data) -> tuple[dict, dict]:
        """Every training window (as row offsets into the padded rows), and ``val_windows`` held-out ones."""
        w = data.windows
        is_held = torch.from_numpy(np.isin(w.episode.numpy(), data.held))
        hold = torch.nonzero(is_held).squeeze(1)
        hold = hold[torch.randperm(len(hold), generator=torch.Generator().manual_seed(data.seed))[: data.val_windows]]
        x, valid = w[hold]
        return {"rows": w.rows, "valid": w.valid, "starts": w.starts[~is_held]}, {"x": x, "valid": valid}

    def windows(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d, h = self._train, self.hparams  # rows, valid, starts: see data.windows.TrajectoryWindows
        return gather_windows(d["rows"], d["valid"], d["starts"][idx], h.horizon, h.obs_dim, h.pad_value)

    @property
    def mean_phase(self) -> bool:
        """Residual model, first phase: the update trains μ."""
        return self.model.kind == "residual" and self.updates < self.hparams.mean_steps

    def fit_residual(self) -> None:
        n, k = len(self._train["starts"]), self.hparams.residual_windows
        g = torch.Generator(device=self.device).manual_seed(stream_seed(self.hparams.seed, 0, 7_919))
        idx = torch.randperm(n, generator=g, device=self.device)[:k]
        self.model.fit_residual(*self.windows(idx))

    def training_step(self, step, batch_idx=None):
        x, valid = self.windows(self.indices(len(self._train["starts"]), (self.hparams.batch_size,)))
        if self.mean_phase:
            loss = self.model.mean_loss(x, valid).mean()
            self.metric("train/mean_loss", loss, prog_bar=True)
            return loss
        if self.model.kind == "residual" and self.updates == self.hparams.mean_steps:
            self.fit_residual()
        loss, _ = self.model.loss(x, valid, self.generator(1))
        loss = loss.mean()
        self.metric("train/loss", loss, prog_bar=True)
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        """Residual model: the phase's idle network takes no step (Adam skips a None gradient; DDP may have
        filled it with zeros, and Adam's momentum would still move it)."""
        if self.model.kind == "residual":
            for p in (self.model.net if self.mean_phase else self.model.mean_net).parameters():
                p.grad = None

    def validation_step(self, step, batch_idx=None):
        """Holdout loss at fixed σ bins (per-σ-bin denoising loss) with fixed noise: a deterministic metric."""
        x, valid = self._holdout["x"], self._holdout["valid"]
        g = torch.Generator(device=self.device).manual_seed(12345)
        if self.model.kind != "edm":
            mean_loss = self.model.mean_loss(x, valid).mean()
            if self.model.kind == "regressor" or self.mean_phase:
                self.metric("val/loss", mean_loss, prog_bar=True)
                return
            self.metric("val/mean_loss", mean_loss)
            x = self.model.to_residual(x, self.model.mean(x))
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
