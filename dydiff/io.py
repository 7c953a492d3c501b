"""The one atomic writer: write to ``<path>.tmp``, then rename, so a crash never leaves a half-written file.
Used for Lightning checkpoints, SAC snapshots, caches, manifests, summaries and HDF5 datasets."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on an error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_atomic(obj, path: str | Path) -> None:
    """``torch.save`` atomically (plain values only, so the file loads with ``weights_only=True``)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_json(path: str | Path, obj, **kw) -> None:
    """``json.dump`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, **kw))
