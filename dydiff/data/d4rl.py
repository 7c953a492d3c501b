"""D4RL HDF5 files, read directly with h5py (the ``d4rl`` package is not needed, and cannot run on
current Python), and written in the same schema so d3rlpy, CORL or any script reads our built-in data."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from dydiff.data.dataset import OfflineDataset
from dydiff.envs.registry import Task, get_task
from dydiff.errors import DatasetError
from dydiff.io import atomic_path
from dydiff.types import KEYS

log = logging.getLogger(__name__)


def d4rl_path(name_or_path: str) -> Path:
    """A path, or a D4RL name (hopper-medium-replay-v2) found in $D4RL_DATASET_DIR or ~/.d4rl/datasets; maze2d
    names also find D4RL's download name (maze2d-umaze-v1 → maze2d-umaze-sparse-v1.hdf5)."""
    p = Path(name_or_path).expanduser()
    if p.suffix in (".hdf5", ".h5") or p.exists():
        return p
    root = Path(os.environ.get("D4RL_DATASET_DIR", "~/.d4rl/datasets")).expanduser()
    stem, _, version = name_or_path.rpartition("-v")
    sparse = [root / f"{stem}-sparse-v{version}.hdf5"] if name_or_path.startswith("maze2d-") and stem else []
    for candidate in (root / f"{name_or_path}.hdf5", *sparse, *root.glob(f"{name_or_path}*.hdf5")):
        if candidate.exists():
            return candidate
    return root / f"{name_or_path}.hdf5"


def qlearning_transitions(data: dict, max_episode_steps: int, source: str) -> tuple[dict, np.ndarray]:
    """``d4rl.qlearning_dataset`` for files without next_observations.

    Row i becomes (obs[i], act[i], rew[i], obs[i+1], terminal[i]) for i < N−1; a row that ends in a
    timeout (or, without ``timeouts``, the step where the episode reaches ``max_episode_steps``) is
    dropped, since its next state is not in the file. A terminal row's next observation is then the next
    episode's first state: D4RL's convention, harmless because done masks the bootstrap.
    Returns the transitions and the kept row indices.
    """
    n = len(data["rewards"])
    if "timeouts" in data:
        timeouts = np.asarray(data["timeouts"]).astype(bool)
    else:
        timeouts, step = np.zeros(n, dtype=bool), 0
        terminals = np.asarray(data["terminals"]).astype(bool)
        for i in range(n - 1):  # d4rl's counter: 0 after a timeout, 1 after a terminal (sic)
            timeouts[i] = step == max_episode_steps - 1
            step = 0 if timeouts[i] else 1 if terminals[i] else step + 1
        log.info(
            "[%s] no 'timeouts' key: episodes time out every %d steps, as d4rl does",
            source,
            max_episode_steps,
        )
    keep = np.flatnonzero(~timeouts[: n - 1])
    log.info(
        "[%s] no 'next_observations' key: next state from the following row; dropped %d timeout row(s) "
        "and the last row, as d4rl.qlearning_dataset does",
        source,
        n - len(keep),
    )
    obs = np.asarray(data["observations"])
    out = {k: np.asarray(data[k])[keep] for k in ("observations", "actions", "rewards", "terminals")}
    out["next_observations"] = obs[keep + 1]
    # Every kept row is followed by a row of the same episode, except before a dropped timeout row.
    out["timeouts"] = np.zeros(len(keep), dtype=bool)
    out["timeouts"][:-1] = timeouts[keep[:-1] + 1] & ~out["terminals"][:-1].astype(bool)
    return out, keep


def read_d4rl(name_or_path: str, task: Task | str | None = None) -> OfflineDataset:
    """Load a D4RL-schema HDF5 file into a validated ``OfflineDataset``.

    Files with ``next_observations`` keep every row. ``infos/qpos``, ``infos/qvel`` and ``infos/goal`` are
    kept where present, and reference returns stored in the file's attributes override the task's.
    """
    path = d4rl_path(name_or_path)
    source = str(path)
    if not path.exists():
        raise DatasetError(
            source,
            f"no such file; put D4RL files in $D4RL_DATASET_DIR or ~/.d4rl/datasets "
            f"(tried for {name_or_path!r})",
        )
    if not h5py.is_hdf5(path):
        raise DatasetError(source, "not an HDF5 file")
    task = get_task(task or path.stem) if not isinstance(task, Task) else task
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in KEYS if k in f}
        infos = {k: f[f"infos/{k}"][()] for k in ("qpos", "qvel", "goal") if f"infos/{k}" in f}
        attrs = {k: f.attrs[k] for k in ("ref_random", "ref_expert") if k in f.attrs}
        if "measured_refs" in f.attrs:
            attrs["measured_refs"] = tuple(float(v) for v in f.attrs["measured_refs"])
    missing = [k for k in ("observations", "actions", "rewards", "terminals") if k not in data]
    if missing:
        raise DatasetError(
            source,
            f"missing key(s) {missing}; a D4RL file needs observations, actions, "
            "rewards, terminals (and optionally next_observations, timeouts)",
        )
    if "next_observations" not in data:
        n = len(data["rewards"])
        if len(data["observations"]) != n:
            raise DatasetError(
                source,
                f"arrays have different lengths: observations {len(data['observations'])}, rewards {n}",
            )
        bad = {k: len(v) for k, v in infos.items() if len(v) != n}
        if bad:
            raise DatasetError(source, f"infos/* with other lengths than the {n} rows: {bad}")
        data, keep = qlearning_transitions(data, task.episode_length, source)
        infos = {k: v[keep] for k, v in infos.items()}
    elif "timeouts" not in data:
        data["timeouts"] = np.zeros(len(data["rewards"]), dtype=bool)
        log.info("[%s] no 'timeouts' key: episodes end only at terminals and at discontinuities", source)
    return OfflineDataset.from_arrays(data, task, source, infos=infos, **attrs)


def write_d4rl(ds: OfflineDataset, path: str | Path, attrs: dict | None = None) -> Path:
    """Write ``ds`` in the D4RL schema (plus ``infos/*``) atomically: a temp file, then a rename."""
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k in KEYS:
            f.create_dataset(k, data=getattr(ds, k), compression="gzip", compression_opts=1)
        for k, v in ds.infos.items():
            f.create_dataset(f"infos/{k}", data=v, compression="gzip", compression_opts=1)
        f.attrs["task"] = ds.task.name
        f.attrs["ref_random"], f.attrs["ref_expert"] = ds.ref_random, ds.ref_expert
        if ds.measured_refs is not None:
            f.attrs["measured_refs"] = np.asarray(ds.measured_refs, np.float64)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v)
    return path
