"""Minari datasets: ``minari:<dataset_id>`` loads a local dataset (downloading only when online), and
built-in datasets can be exported to Minari so that Minari-based tools read the very same data."""

from __future__ import annotations

import logging
import os
import socket
import warnings

import gymnasium as gym
import numpy as np

from dydiff.data.dataset import OfflineDataset
from dydiff.envs.registry import Task, task_from_minari_id
from dydiff.errors import DatasetError
from dydiff.types import KEYS

log = logging.getLogger(__name__)


def _flat(obs) -> np.ndarray:
    """PointMaze's dict observations → the 'observation' entry, (x, y, vx, vy), as for built-in mazes."""
    return np.asarray(obs["observation"] if isinstance(obs, dict) else obs, dtype=np.float32)


def _online(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_minari(dataset_id: str, task: Task | None = None, download: bool | None = None) -> OfflineDataset:
    """Load Minari dataset ``dataset_id`` from $MINARI_DATASETS_PATH (default ~/.minari/datasets).

    A missing dataset is downloaded only when the machine is online (``download=None`` probes);
    otherwise the error says how to obtain it.
    """
    import minari

    source = f"minari:{dataset_id}"
    task = task or task_from_minari_id(dataset_id)
    if dataset_id not in minari.list_local_datasets():
        root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
        how = (
            f"not found locally under {root}. On a machine with internet run `minari download {dataset_id}` "
            f"and copy that folder here, or point MINARI_DATASETS_PATH at a folder that holds it"
        )
        if download is False or (download is None and not _online()):
            raise DatasetError(source, how + " (this machine is offline).")
        try:
            minari.download_dataset(dataset_id)
        except Exception as e:  # noqa: BLE001 - any failure to fetch is reported the same way
            raise DatasetError(source, f"{how}; the download failed: {e}") from e
    mds = minari.load_dataset(dataset_id)
    parts = {
        k: [] for k in KEYS
    }
    for ep in mds.iterate_episodes():
        obs = _flat(ep.observations)
        parts["observations"].append(obs[:-1])
        parts["next_observations"].append(obs[1:])
        parts["actions"].append(np.asarray(ep.actions, dtype=np.float32))
        parts["rewards"].append(np.asarray(ep.rewards, dtype=np.float32))
        parts["terminals"].append(np.asarray(ep.terminations, dtype=bool))
        parts["timeouts"].append(np.asarray(ep.truncations, dtype=bool))
    if not parts["observations"]:
        raise DatasetError(source, "the dataset is empty (0 episodes)")
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    meta = mds.storage.metadata
    refs = {"ref_random": meta.get("ref_min_score"), "ref_expert": meta.get("ref_max_score")}
    if refs["ref_random"] is None or refs["ref_expert"] is None:
        log.info("[%s] no reference scores in its metadata: using task %s's", source, task.name)
    return OfflineDataset.from_arrays(arrays, task, source, **refs)


def write_minari(ds: OfflineDataset, dataset_id: str):
    """Export ``ds`` as a local Minari dataset (flat observations; reference scores in the metadata)."""
    import minari
    from minari.data_collector import EpisodeBuffer

    buffers = []
    for k, (s, e) in enumerate(zip(ds.episode_starts, ds.episode_ends, strict=True)):
        buffers.append(
            EpisodeBuffer(
                id=k,
                observations=ds.episode_states(k),
                actions=ds.actions[s:e],
                rewards=ds.rewards[s:e],
                terminations=ds.terminals[s:e],
                truncations=ds.timeouts[s:e] | (np.arange(s, e) == e - 1) & ~ds.terminals[s:e],
            )
        )
    box = lambda d, lo, hi: gym.spaces.Box(lo, hi, shape=(d,), dtype=np.float32)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari warns that no collection env spec is given: there is none
        return minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            eval_env=ds.task.env_id,
            observation_space=box(ds.task.obs_dim, -np.inf, np.inf),
            action_space=box(ds.task.act_dim, -1.0, 1.0),
            ref_min_score=ds.ref_random,
            ref_max_score=ds.ref_expert,
            algorithm_name="dydiff built-in generator",
            description=f"{ds.source} (fingerprint {ds.fingerprint})",
        )
