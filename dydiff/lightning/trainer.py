"""Trainer construction shared by the stages: atomic checkpoints, TensorBoard, progress bars."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.callbacks.weight_averaging import EMAWeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dydiff.io import save_atomic
from dydiff.lightning.progress import progress_callbacks


class Steps:
    """An iterable of ``n`` step indices: one 'epoch' of ``n`` batches (the batches themselves are drawn
    on the device by the module)."""

    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoints through ``save_atomic``."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        save_atomic(checkpoint, path)


def make_trainer(ckpt_dir: str | Path, log_name: str, max_epochs: int, monitor: str | None = "val/loss",
                 patience: int | None = None, ema_decay: float | None = None, log_dir: str = "runs",
                 accelerator: str = "auto", devices="auto", strategy: str = "auto", precision: str = "32-true",
                 progress: bool | str = True, max_time: str | None = None, callbacks: list | None = None,
                 **kw) -> L.Trainer:
    """A Trainer that writes ``last.ckpt`` every epoch (and ``best.ckpt`` on ``monitor``) to ``ckpt_dir``,
    TensorBoard logs to ``log_dir/log_name``, stops early after ``patience`` epochs without improvement, and
    keeps an EMA of the weights (saved as the checkpoint's state_dict) when ``ema_decay`` is set; ``callbacks``
    are added first, progress (see ``progress_callbacks``) last."""
    if monitor:
        ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, save_last=True,
                               enable_version_counter=False)
    else:  # keep only the latest, as last.ckpt, every epoch
        ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="last", enable_version_counter=False)
    callbacks = [*(callbacks or []), ckpt, LearningRateMonitor()]
    bars = progress_callbacks(progress, log_name, kw.pop("refresh_rate", 20))
    if patience:
        callbacks.append(EarlyStopping(monitor=monitor, patience=patience, mode="min"))
    if ema_decay:
        callbacks.append(EMAWeightAveraging(decay=ema_decay))
    return L.Trainer(max_epochs=max_epochs, callbacks=callbacks + bars, plugins=[AtomicCheckpointIO()],
                     logger=TensorBoardLogger(log_dir, name=log_name, version="", default_hp_metric=False),
                     accelerator=accelerator, devices=devices, strategy=strategy, precision=precision,
                     enable_progress_bar=any(isinstance(b, L.pytorch.callbacks.ProgressBar) for b in bars),
                     max_time=max_time, num_sanity_val_steps=0,
                     enable_model_summary=False, **kw)
