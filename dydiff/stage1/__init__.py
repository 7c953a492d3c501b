"""Stage 1: the LightningModules trained then frozen (``base.py`` says what a new one implements), the registry
keyed by their names, and their training (``train.py``)."""

from __future__ import annotations

from dydiff.stage1.base import Stage1Data, Stage1Module
from dydiff.stage1.denoiser import DenoiserModule
from dydiff.stage1.dynamics import DynamicsModule
from dydiff.stage1.reward import RewardModule
from dydiff.stage1.synther import SynthERModule

# name → module class. The order seeds each model's initial weights (seed + index): do not reorder.
MODULES: dict[str, type[Stage1Module]] = {m.name: m for m in (DenoiserModule, DynamicsModule, RewardModule,
                                                              SynthERModule)}
DYDIFF_MODELS = ("denoiser", "dynamics", "reward")  # DyDiff's three; "synther" is SynthER's optional fourth

__all__ = ["DYDIFF_MODELS", "MODULES", "DenoiserModule", "DynamicsModule", "RewardModule", "Stage1Data",
           "Stage1Module", "SynthERModule"]
