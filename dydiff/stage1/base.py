"""What every stage-1 LightningModule shares, and the interface a new stage-1 model implements.

A stage-1 model is one file here: a ``Stage1Module`` subclass that declares
- ``name``: its registry key, its section of ``conf/pretrain.yaml`` and its folder under ``<pretrain>/``;
- ``checkpoint``: which of its checkpoints stage 2 loads ("best": lowest holdout loss; "last": the EMA weights
  at the end); ``mixed_precision``: whether it trains in ``trainer.precision`` (else fp32);
- ``build(data, **module_kwargs)``: the module for a dataset (dimensions and normalisers from ``data``);
- ``data_view(data)``: its (train, holdout) tensors;
and one entry in ``dydiff.stage1.MODULES``.

Each module samples its own batches on the device from tensors given by ``attach_data`` (no per-sample
Dataset or collate): batch indices come from a generator seeded with (seed, rank, update), where ``updates``
is the module's own counter (saved in checkpoints), so a resumed run draws exactly the batches an
uninterrupted one would. The dataloader only counts steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import lightning as L
import numpy as np
import torch

from dydiff.data.dataset import OfflineDataset
from dydiff.data.windows import TrajectoryWindows
from dydiff.types import stream_seed


@dataclass
class Stage1Data:
    """The inputs every stage-1 model is built and trained from: the dataset, the held-out episodes (left out of
    every model), the window length, the window normaliser of the manifest, the pad sentinel and the seed."""

    ds: OfflineDataset
    held: np.ndarray
    horizon: int = 64
    normalizer: object = None
    pad_value: float = -1.1
    val_windows: int = 512
    seed: int = 0

    @property
    def dims(self) -> dict:
        return {"obs_dim": self.ds.task.obs_dim, "act_dim": self.ds.task.act_dim}

    @cached_property
    def windows(self) -> TrajectoryWindows:
        return TrajectoryWindows(self.ds, self.horizon, self.normalizer, self.pad_value)

    def transition_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the training and held-out transitions (whole episodes)."""
        ds = self.ds
        episode = np.repeat(np.arange(ds.num_episodes), ds.episode_ends - ds.episode_starts)
        hold = np.isin(episode, self.held)
        return torch.from_numpy(np.flatnonzero(~hold)), torch.from_numpy(np.flatnonzero(hold))

    def transition_view(self, keys: tuple[str, ...]) -> tuple[dict, dict]:
        """(train, holdout) dicts of the named ``Transitions`` fields."""
        t, (tr, ho) = self.ds.transitions(), self.transition_split()
        return {k: getattr(t, k)[tr] for k in keys}, {k: getattr(t, k)[ho] for k in keys}


class Stage1Module(L.LightningModule):
    """Shared plumbing: on-device data, seeded batch indices, Adam."""

    name: str = ""
    checkpoint: str = "best"
    mixed_precision = False  # whether trainer.precision (bf16-mixed on GPUs) applies; else fp32
    updates = 0  # training steps taken; seeds each step's batch

    @classmethod
    def build(cls, data: Stage1Data, **kwargs) -> Stage1Module:
        return cls(**data.dims, seed=data.seed, **kwargs)

    @staticmethod
    def data_view(data: Stage1Data) -> tuple[dict, dict]:
        raise NotImplementedError

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
        g.manual_seed(stream_seed(self.hparams.seed, self.global_rank, self.updates * 31 + salt))
        return g

    def indices(self, n: int, shape) -> torch.Tensor:
        return torch.randint(n, shape, generator=self.generator(), device=self.device)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def metric(self, name: str, value, prog_bar: bool = False) -> None:
        self.log(name, value, prog_bar=prog_bar, batch_size=1)  # batches here are step counters, not data


class SingleStepModule(Stage1Module):
    """A model of (s, a) → target trained on transitions, with inputs standardised over the training split."""

    keys: tuple[str, ...] = ()

    @classmethod
    def data_view(cls, data: Stage1Data) -> tuple[dict, dict]:
        return data.transition_view(cls.keys)

    def attach_data(self, train: dict, holdout: dict) -> None:
        super().attach_data(train, holdout)
        self.model.set_input_stats(train["obs"], train["act"])
