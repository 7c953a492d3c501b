"""Stage 1's training: the holdout split and one Trainer per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dydiff.data.dataset import OfflineDataset
from dydiff.lightning.trainer import Steps, make_trainer, resume_path
from dydiff.stage1 import MODULES
from dydiff.stage1.base import Stage1Data


def holdout_episodes(ds: OfflineDataset, seed: int = 0, fraction: float = 0.2, max_transitions: int = 5000):
    """Whole episodes, drawn at random, until they hold min(fraction·N, max_transitions) transitions (MBPO's
    holdout size). All stage-1 models leave them out; the rollout-error tool draws its windows from them."""
    lengths = ds.episode_ends - ds.episode_starts
    target = min(fraction * len(ds), max_transitions)
    order = np.random.default_rng(seed).permutation(ds.num_episodes)
    take = np.searchsorted(np.cumsum(lengths[order]), target) + 1
    return np.sort(order[: min(take, ds.num_episodes - 1)])


def train_model(name: str, data: Stage1Data, out_dir: Path, module_kwargs: dict, trainer_kwargs: dict,
                resume: bool = False, log_dir: str = "runs"):
    """Train the stage-1 model ``name`` into ``out_dir/<name>/`` (last.ckpt, best.ckpt), logging to
    ``log_dir/<dataset>/pretrain/<name>``; ``out_dir`` is ``checkpoints/<dataset>/pretrain``."""
    if name not in MODULES:
        raise ValueError(f"unknown stage-1 model {name!r}; registered: {', '.join(MODULES)}")
    cls = MODULES[name]
    torch.manual_seed(data.seed + list(MODULES).index(name))  # the initial weights; each step's batch is seeded
    module = cls.build(data, **module_kwargs)
    module.attach_data(*cls.data_view(data))
    kw = dict(trainer_kwargs)
    steps = kw.pop("steps_per_epoch")
    trainer = make_trainer(out_dir / name, f"{Path(out_dir).parent.name}/pretrain/{name}", log_dir=log_dir,
                           log_every_n_steps=min(50, steps), **kw)
    trainer.fit(module, Steps(steps), Steps(1), ckpt_path=resume_path(out_dir / name / "last.ckpt") if resume else None)
    return module, trainer
