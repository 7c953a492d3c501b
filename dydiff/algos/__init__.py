"""Offline RL algorithms as LightningModules with manual optimisation: TD3+BC, CQL, Diffusion-QL.

``ALGOS`` (the registry, keyed by ``conf/algo/<name>.yaml``'s name) and ``load_policy`` load Lightning on first
use, so the plain-torch parts (``networks``, ``optim``) import without it."""

from __future__ import annotations

from pathlib import Path

import torch


def __getattr__(name: str):
    if name == "ALGOS":
        from dydiff.algos.cql import CQL
        from dydiff.algos.diffql import DiffQL
        from dydiff.algos.td3bc import TD3BC

        return {"td3bc": TD3BC, "cql": CQL, "diffql": DiffQL}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# hyperparameters that checkpoints written before the Evaluator callback carry: evaluation settings, which
# change nothing in the policy, so they are dropped when such a checkpoint is loaded
MOVED_TO_EVALUATOR = ("eval_every", "eval_episodes", "ref_random", "ref_expert")


def load_policy(path: str | Path, device="cpu"):
    """Rebuild a policy module from its checkpoint alone (plain hyperparameters, ``weights_only=True``)."""
    from dydiff.algos import ALGOS

    ckpt = torch.load(path, map_location=device, weights_only=True)
    algo = ckpt.get("algo")
    if algo not in ALGOS:
        raise ValueError(f"{path} is not a dydiff policy checkpoint (no known 'algo' entry)")
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if k not in MOVED_TO_EVALUATOR}
    module = ALGOS[algo](**hparams)
    module.load_state_dict(ckpt["state_dict"])
    module.updates = ckpt["updates"]
    return module.to(device).eval()
