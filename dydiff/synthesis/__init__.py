"""Synthetic data for the policy stage: DyDiff (Algorithm 1) and the paper's comparison rows."""

from __future__ import annotations

from pathlib import Path

from dydiff.data.dataset import OfflineDataset
from dydiff.synthesis.buffer import SyntheticBuffer
from dydiff.synthesis.synthesizers import DyDiff, RealEnv, SynthER, Synthesizer

__all__ = ["DyDiff", "RealEnv", "SynthER", "Synthesizer", "SyntheticBuffer", "build_synthesizer"]


def build_synthesizer(cfg: dict, ds: OfflineDataset, pretrain_dir: str | Path, seed: int = 0) -> Synthesizer | None:
    """The synthesizer a ``conf/synth/*.yaml`` asks for (plain dict), with its stage-1 models loaded frozen.
    Keys that only the policy stage reads (name, num_trajectories, buffer_size) are ignored here."""
    kw = {k: v for k, v in cfg.items() if k not in ("name", "num_trajectories", "buffer_size")}
    if cfg["name"] == "none":
        return None
    if cfg["name"] == "dydiff":
        from dydiff.pretrain import load_pretrained

        return DyDiff(load_pretrained(pretrain_dir, ds), ds, **kw)
    if cfg["name"] == "real_env":
        return RealEnv(ds, **kw)
    if cfg["name"] in ("synther", "synther_filtered"):
        from dydiff.pretrain import load_pretrained

        pre = load_pretrained(pretrain_dir, ds, models=("reward", "synther"))
        return SynthER(pre, Path(pretrain_dir) / "synther", seed=seed, **kw)
    raise ValueError(f"unknown synth {cfg['name']!r} (expected none, dydiff, real_env, synther or "
                     f"synther_filtered)")
