"""TensorBoard from a LightningModule on rank 0, against the module's own update counter ``updates``."""

from __future__ import annotations

import torch
from lightning.pytorch.loggers import TensorBoardLogger


class TensorBoardLogging:
    """Mixed into a LightningModule that keeps ``self.updates``."""

    def tensorboard(self):
        """The SummaryWriter on rank 0 with a TensorBoard logger, else None."""
        return self.logger.experiment if self.global_rank == 0 and isinstance(self.logger, TensorBoardLogger) \
            else None

    def scalars(self, metrics: dict) -> None:
        if (tb := self.tensorboard()) is not None:
            for k, v in metrics.items():
                tb.add_scalar(k, float(v.detach() if torch.is_tensor(v) else v), self.updates)

    def image(self, tag: str, img) -> None:
        """An (H, W, 3) uint8 image."""
        if (tb := self.tensorboard()) is not None:
            tb.add_image(tag, img, self.updates, dataformats="HWC")

    def log_train(self, metrics: dict, every: int = 50) -> None:
        """Training losses every ``every`` updates (logging every update would cost more than the update)."""
        if self.updates % every == 0:
            self.scalars(metrics)
