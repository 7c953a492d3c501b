"""Stage 1 as plain functions: holdout split, per-model data, training, the manifest and ``load_pretrained``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from dydiff.data.dataset import OfflineDataset
from dydiff.data.normalizers import normalizer_from_state
from dydiff.data.windows import TrajectoryWindows, fit_window_normalizer
from dydiff.errors import DatasetError
from dydiff.lightning.pretrain import MODULES
from dydiff.lightning.trainer import Steps, make_trainer

MODELS = ("denoiser", "dynamics", "reward")  # DyDiff's three; "synther" is SynthER's optional fourth
ALL_MODELS = (*MODELS, "synther")


def dataset_key(name: str) -> str:
    """A folder name for a dataset name ('minari:mujoco/hopper/medium-v0' → 'minari-mujoco-hopper-medium-v0')."""
    return name.replace("minari:", "minari-").replace("/", "-").replace(":", "-")


def pretrain_path(c: dict) -> Path:
    """Stage 1's folder for a stage config: ``pretrain_dir`` if set, else checkpoints/<dataset>/pretrain."""
    return Path(c["pretrain_dir"] or Path(c["checkpoint_dir"]) / dataset_key(c["dataset"]["name"]) / "pretrain")


def holdout_episodes(ds: OfflineDataset, seed: int = 0, fraction: float = 0.2, max_transitions: int = 5000):
    """Whole episodes, drawn at random, until they hold min(fraction·N, max_transitions) transitions (MBPO's
    holdout size). All three models leave them out; the rollout-error tool draws its windows from them."""
    lengths = ds.episode_ends - ds.episode_starts
    target = min(fraction * len(ds), max_transitions)
    order = np.random.default_rng(seed).permutation(ds.num_episodes)
    take = np.searchsorted(np.cumsum(lengths[order]), target) + 1
    held = np.sort(order[: min(take, ds.num_episodes - 1)])
    return held


def transition_split(ds: OfflineDataset, held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    episode = np.repeat(np.arange(ds.num_episodes), ds.episode_ends - ds.episode_starts)
    hold = np.isin(episode, held)
    return np.flatnonzero(~hold), np.flatnonzero(hold)


def model_data(name: str, ds: OfflineDataset, windows: TrajectoryWindows | None, held: np.ndarray,
               val_windows: int = 512, seed: int = 0) -> tuple[dict, dict]:
    """(train, holdout) tensors for one model."""
    if name == "denoiser":
        is_held = torch.from_numpy(np.isin(windows.episode.numpy(), held))
        hold = torch.nonzero(is_held).squeeze(1)
        hold = hold[torch.randperm(len(hold), generator=torch.Generator().manual_seed(seed))[:val_windows]]
        x, valid = windows[hold]
        train = {"rows": windows.rows, "valid": windows.valid, "starts": windows.starts[~is_held]}
        return train, {"x": x, "valid": valid}
    t = ds.transitions()
    tr, ho = (torch.from_numpy(i) for i in transition_split(ds, held))
    if name == "synther":  # z-scored (s, a, r, s', done) rows, one-row windows
        center, scale = synther_normalizer(ds)
        x = ((t.pack() - torch.tensor(center)) / torch.tensor(scale))[:, None]
        return {"x": x[tr]}, {"x": x[ho][:val_windows]}
    keys = {"dynamics": ("obs", "act", "next_obs"), "reward": ("obs", "act", "rew")}[name]
    return ({k: getattr(t, k)[tr] for k in keys}, {k: getattr(t, k)[ho] for k in keys})


def synther_normalizer(ds: OfflineDataset) -> tuple[list, list]:
    """Per-dimension mean and std (+1e-3) of the packed transitions (s, a, r, s', done)."""
    x = ds.transitions().pack().double()
    return x.mean(0).tolist(), (x.std(0) + 1e-3).tolist()


def build_module(name: str, ds: OfflineDataset, normalizer, horizon: int, **kwargs):
    dims = {"obs_dim": ds.task.obs_dim, "act_dim": ds.task.act_dim}
    if name == "synther":
        center, scale = synther_normalizer(ds)
        return MODULES[name](**dims, center=center, scale=scale, **kwargs)
    if name == "denoiser":
        center, scale = normalizer.center.tolist(), normalizer.scale.tolist()
        return MODULES[name](**dims, horizon=horizon, center=center, scale=scale, **kwargs)
    return MODULES[name](**dims, **kwargs)


def train_model(name: str, ds: OfflineDataset, out_dir: Path, held: np.ndarray, module_kwargs: dict,
                trainer_kwargs: dict, horizon: int = 64, normalizer=None, pad_value: float = -1.1,
                val_windows: int = 512, resume: bool = False, log_dir: str = "runs", seed: int = 0):
    """Train one stage-1 model into ``out_dir/<name>/`` (last.ckpt, best.ckpt), logging to
    ``log_dir/<dataset>/pretrain/<name>``; ``out_dir`` is ``checkpoints/<dataset>/pretrain``. ``normalizer``
    is the window normaliser recorded in the manifest (fitted min–max when omitted); only the denoiser uses it."""
    norm = normalizer if normalizer is not None else fit_window_normalizer(ds)
    windows = TrajectoryWindows(ds, horizon, norm, pad_value) if name == "denoiser" else None
    extra = {"pad_value": pad_value} if name == "denoiser" else {}
    torch.manual_seed(seed + ALL_MODELS.index(name))  # the initial weights; each step's batch is seeded itself
    module = build_module(name, ds, norm, horizon, seed=seed, **extra, **module_kwargs)
    train, holdout = model_data(name, ds, windows, held, val_windows, seed)
    if name in ("dynamics", "reward"):
        module.model.set_input_stats(train["obs"], train["act"])
    module.attach_data(train, holdout)
    kw = dict(trainer_kwargs)
    steps = kw.pop("steps_per_epoch")
    trainer = make_trainer(out_dir / name, f"{Path(out_dir).parent.name}/pretrain/{name}", log_dir=log_dir,
                           log_every_n_steps=min(50, steps), **kw)
    last = out_dir / name / "last.ckpt"
    trainer.fit(module, Steps(steps), Steps(1), ckpt_path=str(last) if resume and last.exists() else None)
    return module, trainer


# ---- manifest and loading ------------------------------------------------------------------------
def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def write_manifest(out_dir: Path, ds: OfflineDataset, held: np.ndarray, normalizer_state: dict, configs: dict):
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "manifest.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    if old.get("fingerprint") not in (None, ds.fingerprint):
        raise DatasetError(ds.source, f"{out_dir} holds models of another dataset (fingerprint "
                                      f"{old['fingerprint']}, this one {ds.fingerprint}); use another directory")
    versions = {p: version(p) for p in ("torch", "lightning", "gymnasium", "mujoco", "gymnasium-robotics")}
    _atomic_json(path, {"dataset": ds.source, "task": ds.task.name, "fingerprint": ds.fingerprint,
                        "holdout_episodes": held.tolist(), "normalizer": normalizer_state,
                        "models": {**old.get("models", {}), **configs}, "versions": versions})


def read_manifest(out_dir: str | Path) -> dict:
    path = Path(out_dir) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no stage-1 manifest at {path}: run `python stages/pretrain.py` first")
    return json.loads(path.read_text())


@dataclass
class Pretrained:
    denoiser: torch.nn.Module | None
    dynamics: torch.nn.Module | None
    reward: torch.nn.Module | None
    synther: torch.nn.Module | None
    normalizer: object
    manifest: dict


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
                    models=ALL_MODELS) -> Pretrained:
    """The frozen stage-1 models and the window normaliser. Refuses a directory whose manifest fingerprint
    differs from ``dataset`` (an ``OfflineDataset`` or a fingerprint string)."""
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
        ckpt = out_dir / name / ("last.ckpt" if name in ("denoiser", "synther") else "best.ckpt")
        ckpt = ckpt if ckpt.exists() else out_dir / name / "last.ckpt"
        if ckpt.exists():
            model = load_module(ckpt, device).model.eval()
            found[name] = model.requires_grad_(False)
    return Pretrained(found.get("denoiser"), found.get("dynamics"), found.get("reward"), found.get("synther"),
                      normalizer_from_state(manifest["normalizer"]), manifest)
