"""Built-in D4RL-style locomotion datasets on Gymnasium's Hopper/HalfCheetah/Walker2d-v5 (D4RL's recipe):

- random: a uniform random policy;
- medium: rollouts of the SAC snapshot taken when its evaluation return first reached ``medium_return``
  (D4RL: about a third of expert), actions sampled from the policy;
- medium-replay: SAC's replay buffer up to that snapshot;
- expert: rollouts of the final SAC policy, actions sampled;
- medium-expert: medium then expert, concatenated.

A time limit is a timeout, never a terminal; the last row of a collection is a timeout. Every row stores the
simulator state before it (``infos/qpos``, ``infos/qvel``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dydiff.builtin.sac import empty_buffer, load_actor, record_step, train_sac
from dydiff.data.dataset import OfflineDataset
from dydiff.envs.evaluation import evaluate, random_policy
from dydiff.envs.registry import Task
from dydiff.progress import track
from dydiff.types import KEYS, STATE_KEYS

KINDS = ("random", "medium", "medium-replay", "expert", "medium-expert")


def collect(task: Task, act, size: int, seed: int = 0, progress: bool = True, desc: str = "") -> dict:
    """``size`` transitions of whole episodes one after another (the last one cut by a timeout)."""
    env = task.make_env()
    a_ = empty_buffer(task, size, env)
    obs, _ = env.reset(seed=seed)
    for t in track(range(size), size, desc or f"collecting {task.name}", progress):
        obs, _, _ = record_step(env, a_, t, obs, np.asarray(act(obs[None]), np.float32)[0])
    env.close()
    if not a_["terminals"][-1]:
        a_["timeouts"][-1] = True  # the collection stops: a time limit
    return a_


def to_dataset(arrays: dict, task: Task, source: str, ref_random: float, ref_expert: float) -> OfflineDataset:
    infos = {k: arrays[k] for k in STATE_KEYS}
    ds = OfflineDataset.from_arrays({k: v for k, v in arrays.items() if k not in infos}, task, source, infos=infos)
    ds.ref_random, ds.ref_expert = ref_random, ref_expert
    return ds


def build_locomotion(task: Task, kind: str, size: int, behaviour_dir: str | Path, sac: dict, medium_return: float,
                     seed: int = 0, ref_episodes: int = 10, progress: bool = True) -> OfflineDataset:
    """One dataset of ``kind`` (not medium-expert); trains (or reuses) the SAC behaviour policy in
    ``behaviour_dir`` first."""
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")
    behaviour_dir = Path(behaviour_dir)
    res = train_sac(task, behaviour_dir, seed=seed, medium_return=medium_return, progress=progress,
                    log_dir=behaviour_dir / "tb", **sac)
    expert = load_actor(res["dir"] / "expert.pt", task, sac.get("hidden", 256))
    ref_random = evaluate(random_policy(task, seed), task, ref_episodes, seed=20_000).return_mean
    ref_expert = evaluate(lambda o: expert.act(o), task, ref_episodes, seed=20_000).return_mean
    source = f"builtin:{task.name}-{kind}"
    if kind != "random" and kind != "expert" and res["medium_step"] is None:
        raise RuntimeError(f"SAC on {task.name} never reached the medium return {medium_return} in "
                           f"{max(sac['steps'], sac.get('max_steps') or 0)} steps (evaluations: {res['evaluations']}); "
                           f"train longer (sac.max_steps continues the finished run) or lower medium_return")
    g = torch.Generator().manual_seed(seed)
    sampled = lambda agent: lambda o: agent.act(o, False, g)  # noqa: E731  (D4RL samples from the policy)
    if kind == "random":
        arrays = collect(task, random_policy(task, seed), size, seed, progress, f"{source} random")
    elif kind == "medium-replay":
        arrays = {k: v[: res["medium_step"]] for k, v in res["buffer"].items()}
        arrays["timeouts"] = arrays["timeouts"].copy()
        if not arrays["terminals"][-1]:
            arrays["timeouts"][-1] = True
    elif kind in ("medium", "expert"):
        agent = expert if kind == "expert" else load_actor(res["dir"] / "medium.pt", task, sac.get("hidden", 256))
        arrays = collect(task, sampled(agent), size, seed + (1 if kind == "medium" else 2), progress, source)
    else:
        raise ValueError("medium-expert is the concatenation of medium and expert: use concatenate()")
    return to_dataset(arrays, task, source, ref_random, ref_expert)


def concatenate(parts: list[OfflineDataset], source: str) -> OfflineDataset:
    """medium-expert: the exact concatenation of the medium and expert datasets (references of the first)."""
    arrays = {k: np.concatenate([getattr(p, k) for p in parts]) for k in KEYS}
    arrays.update({k: np.concatenate([p.infos[k] for p in parts]) for k in STATE_KEYS})
    return to_dataset(arrays, parts[0].task, source, parts[0].ref_random, parts[0].ref_expert)
