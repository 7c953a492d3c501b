"""The one atomic writer: write to ``<path>.tmp``, then rename, so a crash never leaves a half-written file.
Used for Lightning checkpoints, SAC snapshots, caches, manifests, summaries and HDF5 datasets."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``, unique to this writer (process and call); on success it replaces
    ``path``, on an error it is removed. Concurrent writers never share a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
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


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` (POSIX ``flock``) for a build-if-missing: one process builds while the
    others wait, then find the result. The lock is released when the block ends or the process dies."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def locked_on_rank_zero(path: str | Path):
    """``locked(path)`` in the process that starts a (possibly distributed) run; a no-op in the processes a
    launcher starts for ranks > 0 (they must not wait for a lock their rank 0 holds while it waits for them)."""
    if any(os.environ.get(k, "0") != "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK")):
        return nullcontext()
    return locked(path)


def load_or_discard(path: str | Path, map_location=None):
    """``torch.load`` (``weights_only``) of a cache or checkpoint that can be made again: None where it is
    missing; a corrupt one is removed with a warning naming it, so that the caller makes it again."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is treated the same way
        log.warning("%s is corrupt (%s): removing it; it is made again", path, e)
        path.unlink()
        return None
