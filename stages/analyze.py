"""Analyses of finished runs.

    python stages/analyze.py rollout_error                       # held-out dataset actions (default)
    python stages/analyze.py rollout_error compare='{mlp: checkpoints/x/pretrain/denoiser/last.ckpt}'
    python stages/analyze.py rollout_error policy=checkpoints/maze2d-umaze/policy/td3bc-none/seed0/last.ckpt
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from dydiff.data.sources import load_dataset
from dydiff.diagnostics import run_rollout_error
from dydiff.pretrain import dataset_key


def run(cfg: DictConfig) -> dict:
    c = OmegaConf.to_container(cfg, resolve=True)
    if c["mode"] != "rollout_error":
        raise ValueError(f"unknown analysis {c['mode']!r}; available: rollout_error")
    ds = load_dataset(data_dir=c["data_dir"], **c["dataset"])
    pretrain = Path(c["pretrain_dir"] or Path(c["checkpoint_dir"]) / dataset_key(c["dataset"]["name"]) / "pretrain")
    policy = None
    if c["policy"]:
        from dydiff.algos import load_policy  # stage 2

        module = load_policy(c["policy"])
        policy = lambda obs: module.act(obs, deterministic=True)  # noqa: E731
    return run_rollout_error(pretrain, ds, c["windows"], c["seed"], c["log_dir"], policy, c["compare"])


@hydra.main(config_path="../conf", config_name="analyze", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    if len(sys.argv) > 1 and "=" not in sys.argv[1] and not sys.argv[1].startswith("-"):
        sys.argv[1] = f"mode={sys.argv[1]}"  # `analyze.py rollout_error ...`
    main()
