"""One entry point for every dataset source.

- ``minari:<dataset_id>``: a Minari dataset (local, or downloaded when online);
- a built-in name (``maze2d-{umaze,medium,large}`` on D4RL's env, ``pointmaze-{umaze,medium,large}`` on
  Gymnasium-Robotics PointMaze-v3, ``builtin-<env>-<kind>`` for
  hopper / halfcheetah / walker2d × random / medium / medium-replay / expert / medium-expert): generated on
  the spot, then cached as a D4RL-schema HDF5 file keyed by its generator settings;
- anything else: a D4RL HDF5 file, by path or by D4RL name (``hopper-medium-replay-v2``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import h5py

from dydiff.builtin.locomotion import KINDS, build_locomotion, concatenate
from dydiff.builtin.maze import generate_maze_dataset, measure_references
from dydiff.data.d4rl import read_d4rl, write_d4rl
from dydiff.data.dataset import OfflineDataset
from dydiff.data.minari_io import load_minari
from dydiff.envs.registry import TASKS, get_task
from dydiff.io import locked

log = logging.getLogger(__name__)
BUILTIN = tuple(f"{kind}-{size}" for kind in ("maze2d", "pointmaze") for size in ("umaze", "medium", "large"))
LOCOMOTION = tuple(f"builtin-{env}-{kind}" for env in ("hopper", "halfcheetah", "walker2d") for kind in KINDS)
GENERATOR_VERSION = 2  # bump when the generator's output changes, so caches rebuild


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def builtin_path(name: str, settings: dict, data_dir: str | Path) -> Path:
    return Path(data_dir).expanduser() / "builtin" / f"{name}-{settings['size']}-{settings_key(settings)}.hdf5"


def cached(path: Path, settings: dict, name: str) -> OfflineDataset | None:
    """The dataset cached at ``path`` if it was built with exactly ``settings`` and its content is intact (it
    reads, and its arrays hash to the fingerprint stored when it was written); a corrupt file is removed."""
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as f:
            same, stored = json.loads(f.attrs.get("generator", "{}")) == settings, f.attrs.get("fingerprint")
        if not same:
            log.info("generator settings changed: rebuilding %s", path)
            return None
        ds = read_d4rl(str(path), name)
        if stored is not None and ds.fingerprint != stored:
            raise ValueError(f"its arrays hash to {ds.fingerprint}, not to the stored {stored}")
    except Exception as e:  # noqa: BLE001 - any unreadable cache is rebuilt the same way
        log.warning("the cached built-in dataset %s is corrupt (%s): removing it and building it again", path, e)
        path.unlink(missing_ok=True)
        return None
    log.info("loading cached built-in dataset %s", path)
    return ds


def build_or_load(path: Path, settings: dict, name: str, build) -> OfflineDataset:
    """The cached dataset, or ``build()`` written to the cache, under a lock: of several processes that need the
    same dataset, one builds and the others wait and load it."""
    with locked(path):
        if (ds := cached(path, settings, name)) is not None:
            return ds
        ds = build()
        write_d4rl(ds, path, attrs={"generator": json.dumps(settings, sort_keys=True), "fingerprint": ds.fingerprint})
        log.info("built %s -> %s", name, path)
        return read_d4rl(str(path), name)


def load_builtin_locomotion(name: str, size: int, sac: dict, medium_return: float, seed: int = 0,
                            data_dir: str | Path = "data", ref_episodes: int = 10, progress: bool = True):
    """A built-in locomotion dataset (``builtin-<env>-<kind>``), from the cache or built (SAC behaviour policy
    cached in ``<data_dir>/builtin/behaviour/``, keyed by its settings)."""
    if name not in LOCOMOTION:
        raise KeyError(f"unknown built-in dataset {name!r}; built-in locomotion: {', '.join(LOCOMOTION)}")
    env, kind = name.removeprefix("builtin-").split("-", 1)
    # max_steps is left out of the behaviour folder's key: an extension lives inside it (extended-<max_steps>/),
    # continuing the run that the other settings define
    behaviour = {"env": env, "seed": int(seed), "sac": {k: v for k, v in sac.items() if k != "max_steps"},
                 "medium_return": float(medium_return), "version": GENERATOR_VERSION}
    settings = {"name": name, "size": int(size), "ref_episodes": int(ref_episodes),
                "behaviour": {**behaviour, "sac": dict(sac)}}

    def build():
        if kind == "medium-expert":  # the two cached (or built) datasets, concatenated
            kw = dict(size=size, sac=sac, medium_return=medium_return, seed=seed, data_dir=data_dir,
                      ref_episodes=ref_episodes, progress=progress)
            parts = [load_builtin_locomotion(f"builtin-{env}-{k}", **kw) for k in ("medium", "expert")]
            return concatenate(parts, f"builtin:{env}-{kind}")
        bdir = Path(data_dir).expanduser() / "builtin" / "behaviour" / f"{env}-seed{seed}-{settings_key(behaviour)}"
        return build_locomotion(get_task(env), kind, size, bdir, dict(sac), medium_return, seed, ref_episodes,
                                progress)

    return build_or_load(builtin_path(name, settings, data_dir), settings, name, build)


def load_builtin(
    name: str,
    size: int,
    seed: int = 0,
    data_dir: str | Path = "data",
    action_noise: float = 0.5,
    jitter: float = 0.2,
    stale_obs: bool = False,
    ref_episodes: int = 100,
    progress: bool = True,
) -> OfflineDataset:
    """Load a cached built-in maze dataset, or generate it, measure its references and cache it.

    The references are measured with D4RL's protocol (``measure_references``) and stored. D4RL's maze2d
    (``maze2d-*``) keeps D4RL's REF_MIN / REF_MAX as the normalized score's constants, as the paper and CORL
    use them, with the measured ones beside; PointMaze-v3 (``pointmaze-*``) scores with the measured ones."""
    if name not in BUILTIN:
        raise KeyError(f"unknown built-in dataset {name!r}; built-in: {', '.join(BUILTIN)}")
    settings = {
        "name": name,
        "size": int(size),
        "seed": int(seed),
        "action_noise": float(action_noise),
        "jitter": float(jitter),
        "stale_obs": bool(stale_obs),
        "ref_episodes": int(ref_episodes),
        "version": GENERATOR_VERSION,
    }

    def build():
        task = get_task(name)
        ds = generate_maze_dataset(task, size, seed, action_noise, jitter, stale_obs, progress=progress)
        ds.measured_refs = measure_references(task, ref_episodes)
        if task.maze_frame != "d4rl":
            ds.ref_random, ds.ref_expert = ds.measured_refs
        return ds

    return build_or_load(builtin_path(name, settings, data_dir), settings, name, build)


def load_dataset(
    name: str, task: str | None = None, data_dir: str | Path = "data", **builtin
) -> OfflineDataset:
    """Resolve ``name`` to a source and return the validated ``OfflineDataset``.

    ``builtin`` keywords (size, seed, action_noise, jitter, stale_obs, ref_episodes, progress) apply to
    built-in data.
    """
    if name.startswith("minari:"):
        return load_minari(name.removeprefix("minari:"), TASKS[task] if task else None)
    if name in BUILTIN:
        return load_builtin(name, data_dir=data_dir, **builtin)
    if name in LOCOMOTION:
        return load_builtin_locomotion(name, data_dir=data_dir, **builtin)
    return read_d4rl(name, task)
