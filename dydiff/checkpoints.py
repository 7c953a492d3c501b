"""Stage 1's folder, manifest and loading: what stage 2 and the analyses read.

``<checkpoint_dir>/<dataset>/pretrain/`` holds one folder per stage-1 model (``last.ckpt``, ``best.ckpt``) and
``manifest.json`` (dataset fingerprint, holdout episodes, window normaliser, configs, package versions)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from dydiff.data.dataset import OfflineDataset
from dydiff.data.normalizers import normalizer_from_state
from dydiff.errors import DatasetError
from dydiff.io import write_json
from dydiff.stage1 import MODULES


def dataset_key(name: str) -> str:
    """A folder name for a dataset name ('minari:mujoco/hopper/medium-v0' → 'minari-mujoco-hopper-medium-v0')."""
    return name.replace("minari:", "minari-").replace("/", "-").replace(":", "-")


def pretrain_path(c: dict) -> Path:
    """Stage 1's folder for a stage config: ``pretrain_dir`` if set, else checkpoints/<dataset>/pretrain."""
    return Path(c["pretrain_dir"] or Path(c["checkpoint_dir"]) / dataset_key(c["dataset"]["name"]) / "pretrain")


def write_manifest(out_dir: Path, ds: OfflineDataset, held: np.ndarray, normalizer_state: dict, configs: dict,
                   horizon: int | None = None):
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "manifest.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    if old.get("fingerprint") not in (None, ds.fingerprint):
        raise DatasetError(ds.source, f"{out_dir} holds models of another dataset (fingerprint "
                                      f"{old['fingerprint']}, this one {ds.fingerprint}); use another directory")
    versions = {p: version(p) for p in ("torch", "lightning", "gymnasium", "mujoco", "gymnasium-robotics")}
    write_json(path, {"dataset": ds.source, "task": ds.task.name, "fingerprint": ds.fingerprint,
                      "holdout_episodes": held.tolist(), "normalizer": normalizer_state,
                      "models": {**old.get("models", {}), **configs}, "versions": versions,
                      "horizon": horizon if horizon is not None else old.get("horizon")}, indent=2, sort_keys=True)


def read_manifest(out_dir: str | Path) -> dict:
    path = Path(out_dir) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no stage-1 manifest at {path}: run `python stages/pretrain.py` first")
    return json.loads(path.read_text())


@dataclass
class Pretrained:
    """The frozen stage-1 models found (by registry name: ``pre.denoiser``, ``pre.dynamics``, … is None where
    the folder has none), the window normaliser and the manifest."""

    models: dict = field(default_factory=dict)
    normalizer: object = None
    manifest: dict = field(default_factory=dict)

    def __getattr__(self, name: str):
        if name in MODULES:
            return self.__dict__["models"].get(name)
        raise AttributeError(name)


def load_module(path: str | Path, device="cpu"):
    """Rebuild a stage-1 module from its checkpoint alone (plain hyperparameters, ``weights_only=True``)."""
    name = Path(path).parent.name  # checkpoints/<dataset>/pretrain/<model>/*.ckpt
    if name not in MODULES:
        raise ValueError(f"{path}: expected a checkpoint inside a folder named one of {list(MODULES)}")
    ckpt = torch.load(path, map_location=device, weights_only=True)
    module = MODULES[name](**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    return module.to(device)


def load_pretrained(out_dir: str | Path, dataset: OfflineDataset | str | None = None, device="cpu",
                    models=tuple(MODULES)) -> Pretrained:
    """The frozen stage-1 models (each from the checkpoint its class names, else last.ckpt) and the window
    normaliser. Refuses a directory whose manifest fingerprint differs from ``dataset`` (an ``OfflineDataset``
    or a fingerprint string)."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if dataset is not None:
        fp = dataset if isinstance(dataset, str) else dataset.fingerprint
        if fp != manifest["fingerprint"]:
            raise DatasetError(str(out_dir), f"these stage-1 models were trained on dataset {manifest['dataset']} "
                                             f"(fingerprint {manifest['fingerprint']}), not on this one "
                                             f"(fingerprint {fp}); run `python stages/pretrain.py` for it")
    found = {}
    for name in models:
        ckpt = out_dir / name / f"{MODULES[name].checkpoint}.ckpt"
        ckpt = ckpt if ckpt.exists() else out_dir / name / "last.ckpt"
        if ckpt.exists():
            found[name] = load_module(ckpt, device).model.eval().requires_grad_(False)
    return Pretrained(found, normalizer_from_state(manifest["normalizer"]), manifest)
