"""Progress that a person can follow: a bar per epoch on a terminal, one line per epoch in a log file."""

from __future__ import annotations

import sys
import time
from collections import deque

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from dydiff.progress import duration


class NamedProgressBar(TQDMProgressBar):
    """A progress bar that says what is being trained: '<name> epoch k/N'."""

    def __init__(self, name: str, refresh_rate: int = 20):
        super().__init__(refresh_rate=refresh_rate)
        self.name = name

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"{self.name} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


class LineProgress(L.Callback):
    """One line per epoch, readable in a log file: '<name> epoch k/N  metric v ...  12.3s/epoch  ETA 4m05s'. The line
    is printed once the epoch's metrics are final (at the next epoch's start, or the end of training). The rate is
    the mean over the last ``window`` epochs, so that a one-off cost (SynthER's samples, made in the first epoch,
    ~50 min for 5 seeds at the cpu preset) leaves the ETA after ``window`` epochs; the ETA assumes every epoch up to
    ``max_epochs`` runs (early stopping makes it an upper bound)."""

    def __init__(self, name: str, stream=None, window: int = 10, clock=time.perf_counter):
        self.name, self.stream, self.pending, self.window, self.clock = name, stream, None, window, clock

    def on_train_start(self, trainer, module) -> None:
        self.ends = deque([self.clock()], maxlen=self.window + 1)  # the start, then the last ``window`` epochs' ends

    def on_train_epoch_end(self, trainer, module) -> None:
        done, total = trainer.current_epoch + 1, trainer.max_epochs
        self.ends.append(self.clock())
        per = (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1)
        self.pending = f"epoch {done}/{total}", f"{per:.1f}s/epoch  ETA {duration(per * (total - done))}"

    def on_train_epoch_start(self, trainer, module) -> None:
        self.flush(trainer)

    def on_train_end(self, trainer, module) -> None:
        self.flush(trainer)

    def flush(self, trainer) -> None:
        if self.pending is None or trainer.global_rank:
            return
        metrics = "  ".join(f"{k} {v:.4g}" for k, v in trainer.progress_bar_metrics.items() if k != "v_num")
        line = f"{self.name} {self.pending[0]}  {metrics}  {self.pending[1]}"
        print(line, file=self.stream or sys.stdout, flush=True)
        self.pending = None


def progress_callbacks(progress, name: str, refresh_rate: int = 20) -> list:
    """``progress``: true (a bar on a terminal, lines otherwise), "bar", "lines" or false."""
    if progress is True:
        progress = "bar" if sys.stderr.isatty() else "lines"
    if progress == "bar":
        return [NamedProgressBar(name, refresh_rate=max(1, refresh_rate))]
    if progress == "lines":
        return [LineProgress(name)]
    if progress in (False, None, "false", "none"):
        return []
    raise ValueError(f"progress={progress!r}: expected true, false, 'bar' or 'lines'")
