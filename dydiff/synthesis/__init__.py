"""Synthetic data for the policy stage: DyDiff (Algorithm 1) and the paper's comparison rows.

``base.py`` is the interface and the registry; one file per synthesizer (``dydiff.py``, ``real_env.py``,
``synther.py``), each registering its class; the math in ``refine.py`` (Eqs. 6-9) and ``filter.py`` (Eq. 11);
``round.py`` runs a round into ``buffer.py``'s FIFO buffer. Importing the package loads none of them, so the
math imports with torch alone."""

from __future__ import annotations

import importlib

PLUGINS = ("dydiff", "real_env", "synther")  # the modules whose synthesizers register themselves (@register)
# read by the policy stage and the round, not by the synthesizer
ROUND_KEYS = ("name", "num_trajectories", "buffer_size", "figure_every", "real_ratio", "batched")


def synthesizers() -> dict:
    """The registry, config name → class, with every plug-in module loaded."""
    for m in PLUGINS:
        importlib.import_module(f"dydiff.synthesis.{m}")
    from dydiff.synthesis.base import SYNTHESIZERS

    return SYNTHESIZERS


def build_synthesizer(cfg: dict, ds, pretrained=None, cache_dir=None):
    """The synthesizer a ``conf/synth/*.yaml`` asks for (plain dict; None for ``none``), from the stage-1 models
    it ``needs`` (a ``dydiff.checkpoints.Pretrained``)."""
    if cfg["name"] == "none":
        return None
    registry = synthesizers()
    if cfg["name"] not in registry:
        raise ValueError(f"unknown synth {cfg['name']!r}; registered: none, {', '.join(registry)}")
    kw = {k: v for k, v in cfg.items() if k not in ROUND_KEYS}
    return registry[cfg["name"]](ds, pretrained, cache_dir, **kw)
