"""Offline RL algorithms as LightningModules with manual optimisation: TD3+BC, CQL, Diffusion-QL."""

from __future__ import annotations

from pathlib import Path

import torch

from dydiff.algos.cql import CQL
from dydiff.algos.diffql import DiffQL
from dydiff.algos.td3bc import TD3BC

ALGOS = {"td3bc": TD3BC, "cql": CQL, "diffql": DiffQL}


def load_policy(path: str | Path, device="cpu"):
    """Rebuild a policy module from its checkpoint alone (plain hyperparameters, ``weights_only=True``)."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    algo = ckpt.get("algo")
    if algo not in ALGOS:
        raise ValueError(f"{path} is not a dydiff policy checkpoint (no known 'algo' entry)")
    module = ALGOS[algo](**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    module.updates, module.evaluations = ckpt["updates"], ckpt["evaluations"]
    return module.to(device).eval()
