"""``OfflineDataset``: validated transition arrays with episode bounds, fingerprint, summary and views."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from dydiff.envs.registry import Task, get_task
from dydiff.errors import DatasetError
from dydiff.types import KEYS, Transitions

log = logging.getLogger(__name__)


def validate(arrays: dict[str, np.ndarray], source: str, task: Task) -> None:
    """Raise ``DatasetError`` naming ``source`` on a missing key, bad shape, non-finite value or bad dim."""
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise DatasetError(source, f"missing key(s) {missing}; a dataset needs {list(KEYS)}")
    n = len(arrays["observations"])
    if n == 0:
        raise DatasetError(source, "the dataset is empty (0 transitions)")
    lengths = {k: len(arrays[k]) for k in KEYS}
    if len(set(lengths.values())) != 1:
        raise DatasetError(source, f"arrays have different lengths: {lengths}")
    for k, dim in (
        ("observations", task.obs_dim),
        ("next_observations", task.obs_dim),
        ("actions", task.act_dim),
    ):
        shape = np.shape(arrays[k])
        if len(shape) != 2 or shape[1] != dim:
            raise DatasetError(source, f"{k} has shape {shape}, but task {task.name!r} needs (N, {dim})")
    for k in ("rewards", "terminals", "timeouts"):
        if np.ndim(arrays[k]) != 1:
            raise DatasetError(source, f"{k} must be 1-D, got shape {np.shape(arrays[k])}")
    for k in KEYS:
        bad = ~np.isfinite(np.asarray(arrays[k], dtype=np.float64))
        if bad.any():
            rows = np.flatnonzero(bad.reshape(n, -1).any(1))
            raise DatasetError(
                source, f"{k} has {bad.sum()} NaN/inf value(s), first at row(s) {rows[:5].tolist()}"
            )


@dataclass
class OfflineDataset:
    """Float32 transitions of one task. Episodes end at ``terminal | timeout``, where the next row does
    not continue the current one (``observations[t+1] != next_observations[t]``), and at the last row."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    task: Task
    source: str
    ref_random: float | None = None  # reference returns for the normalized score (default: the task's)
    ref_expert: float | None = None
    measured_refs: tuple[float, float] | None = None  # built-in data: (random, expert) returns measured here
    infos: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # e.g. qpos, qvel, goal: one row per transition

    def __post_init__(self):
        validate({k: getattr(self, k) for k in KEYS}, self.source, self.task)
        for k in ("observations", "actions", "rewards", "next_observations"):
            setattr(self, k, np.ascontiguousarray(getattr(self, k), dtype=np.float32))
        self.terminals = np.asarray(self.terminals).astype(bool)
        self.timeouts = np.asarray(self.timeouts).astype(bool)
        for k, v in self.infos.items():
            if len(v) != len(self):
                raise DatasetError(self.source, f"infos/{k} has {len(v)} rows, expected {len(self)}")
        self.ref_random = self.task.ref_random if self.ref_random is None else float(self.ref_random)
        self.ref_expert = self.task.ref_expert if self.ref_expert is None else float(self.ref_expert)

    def __len__(self) -> int:
        return len(self.observations)

    @classmethod
    def from_arrays(cls, arrays: dict, task: Task | str, source: str, **kw) -> OfflineDataset:
        task = get_task(task) if isinstance(task, str) else task
        validate(arrays, source, task)
        return cls(**{k: arrays[k] for k in KEYS}, task=task, source=source, **kw)

    # ---- structure ---------------------------------------------------------------------------
    @cached_property
    def episode_ends(self) -> np.ndarray:
        """Exclusive end index of every episode, ascending."""
        end = self.terminals | self.timeouts
        end[:-1] |= np.any(self.observations[1:] != self.next_observations[:-1], axis=1)
        end[-1] = True
        return np.flatnonzero(end) + 1

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self.episode_ends[:-1]])

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)

    @cached_property
    def episode_returns(self) -> np.ndarray:
        return np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts)

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of the six arrays (16 hex digits); stage checkpoints are matched on it."""
        h = hashlib.sha256()
        for k in KEYS:
            a = np.ascontiguousarray(getattr(self, k))
            h.update(k.encode() + str(a.shape).encode() + a.tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        r = self.episode_returns
        s = self.task.normalized_score(r, self.ref_random, self.ref_expert)
        return {
            "source": self.source,
            "task": self.task.name,
            "fingerprint": self.fingerprint,
            "transitions": len(self),
            "episodes": self.num_episodes,
            "terminals": int(self.terminals.sum()),
            "timeouts": int(self.timeouts.sum()),
            "return_min": float(r.min()),
            "return_mean": float(r.mean()),
            "return_max": float(r.max()),
            "score_mean": float(np.mean(s)),
            "ref_random": self.ref_random,
            "ref_expert": self.ref_expert,
            # the task's constants (D4RL's reference returns for locomotion): a second way to report scores
            "score_mean_task_refs": float(np.mean(self.task.normalized_score(r))),
            **({"measured_ref_random": self.measured_refs[0], "measured_ref_expert": self.measured_refs[1]}
               if self.measured_refs else {}),
        }

    def describe(self) -> str:
        s = self.summary()
        return (
            f"{s['source']} [{s['task']}, fingerprint {s['fingerprint']}]: {s['transitions']} transitions, "
            f"{s['episodes']} episodes ({s['terminals']} terminal, {s['timeouts']} timeout); return per "
            f"episode min/mean/max {s['return_min']:.2f}/{s['return_mean']:.2f}/{s['return_max']:.2f}; "
            f"references random {s['ref_random']:.2f}, expert {s['ref_expert']:.2f}; normalized score "
            f"{s['score_mean']:.1f}"
            + ("" if (self.ref_random, self.ref_expert) == (self.task.ref_random, self.task.ref_expert) else
               f" ({s['score_mean_task_refs']:.1f} with {self.task.name}'s references {self.task.ref_random:.2f} / "
               f"{self.task.ref_expert:.2f})")
            + (f"; measured here: random {s['measured_ref_random']:.2f}, expert {s['measured_ref_expert']:.2f}"
               if self.measured_refs else "")
        )

    # ---- views -------------------------------------------------------------------------------
    def transitions(self, device: str | torch.device = "cpu") -> Transitions:
        t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        return Transitions(
            t(self.observations),
            t(self.actions),
            t(self.rewards),
            t(self.next_observations),
            t(self.terminals.astype(np.float32)),
        )

    def start_states(self, episode_starts_only: bool = False) -> np.ndarray:
        """States a rollout may start from: every dataset state (default) or only episode starts."""
        return self.observations[self.episode_starts] if episode_starts_only else self.observations

    def set_state(self, env, row: int) -> bool:
        """Put the simulator ``env`` into the state of row ``row`` (with the stored ``infos/qpos``/``qvel`` where
        the dataset has them). Returns whether that state is exact (see ``Task.set_state``)."""
        q = (self.infos["qpos"][row], self.infos["qvel"][row]) if "qpos" in self.infos else (None, None)
        return self.task.set_state(env, self.observations[row], *q)

    def physics_states(self, rows: np.ndarray, nq: int) -> tuple[np.ndarray, np.ndarray]:
        """The qpos (B, nq) and qvel of locomotion rows, float64, as ``set_state`` puts them into the simulator."""
        if "qpos" in self.infos:
            return self.infos["qpos"][rows].astype(np.float64), self.infos["qvel"][rows].astype(np.float64)
        return self.task.physics_state(self.observations[rows], nq)

    def episode_states(self, k: int) -> np.ndarray:
        """The T+1 states of episode k: its observations and the final next observation."""
        s, e = self.episode_starts[k], self.episode_ends[k]
        return np.concatenate([self.observations[s:e], self.next_observations[e - 1 : e]])
