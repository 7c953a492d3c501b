"""Trainer construction shared by the stages: atomic checkpoints, TensorBoard, progress bars."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
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


def set_threads(threads: int | None) -> int:
    """torch's CPU threads for this process: ``threads``, or under SLURM (``SLURM_CPUS_PER_TASK`` set and
    ``OMP_NUM_THREADS`` not) the job's cores, else torch's default (which honours ``OMP_NUM_THREADS``: joblib's
    launcher sets it to cores // n_jobs in each worker). Returns the count in use."""
    if threads is None and "OMP_NUM_THREADS" not in os.environ and os.environ.get("SLURM_CPUS_PER_TASK"):
        threads = int(os.environ["SLURM_CPUS_PER_TASK"])
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads={threads!r}: must be null or an integer ≥ 1")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


class CheckpointError(RuntimeError):
    pass


def previous(path: str | Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``last.ckpt`` → ``last-prev.ckpt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}-prev{path.suffix}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoints through ``save_atomic``; the one each replaces is kept as ``<name>-prev.ckpt``, so a
    resume can fall back to it."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if Path(path).exists():
            os.replace(path, previous(path))
        save_atomic(checkpoint, path)


def resume_path(last: str | Path) -> str | None:
    """The checkpoint to resume from: ``last`` if it reads, else its previous one (said so on stdout), else None
    where neither exists. Neither readable: a ``CheckpointError`` that names the files and the way out."""
    problems = []
    for path in (Path(last), previous(last)):
        if not path.exists():
            continue
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
            problems.append(f"{path} ({type(e).__name__}: {e})")
            continue
        if problems:
            print(f"resume: {problems[0]} is unreadable; resuming from the previous checkpoint {path}", flush=True)
        return str(path)
    if problems:
        raise CheckpointError(f"cannot resume: {'; '.join(problems)}. Delete {Path(last).parent} to start this run "
                              f"afresh, or set resume=false to train from scratch")
    return None


def make_trainer(ckpt_dir: str | Path, log_name: str, max_epochs: int, monitor: str | None = "val/loss",
                 patience: int | None = None, ema_decay: float | None = None, log_dir: str = "runs",
                 accelerator: str = "auto", devices="auto", strategy: str = "auto", precision: str = "32-true",
                 progress: bool | str = True, max_time: str | None = None, callbacks: list | None = None,
                 **kw) -> L.Trainer:
    """A Trainer that writes ``last.ckpt`` every epoch (and ``best.ckpt`` on ``monitor``) to ``ckpt_dir``,
    TensorBoard logs to ``log_dir/log_name``, stops early after ``patience`` epochs without improvement, and
    keeps an EMA of the weights (saved as the checkpoint's state_dict) when ``ema_decay`` is set; ``callbacks``
    are added first, progress (see ``progress_callbacks``) last."""
    # last.ckpt every epoch from its own callback: ModelCheckpoint(save_last=True) writes it only in epochs whose
    # monitored value improved (Lightning 2.6), which left a stale last.ckpt for stage 2 and resume
    ckpts = [ModelCheckpoint(dirpath=ckpt_dir, filename="last", enable_version_counter=False)]
    if monitor:
        ckpts.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, enable_version_counter=False))
    callbacks = [*(callbacks or []), *ckpts, LearningRateMonitor()]
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
