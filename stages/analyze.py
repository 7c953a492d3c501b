"""Analyses of stage-1 models against the real simulator (figures as PNG beside the JSON).

    python stages/analyze.py rollout_error                       # Fig. 4, held-out dataset actions (default)
    python stages/analyze.py rollout_error compare='{mlp: checkpoints/x/pretrain/denoiser/last.ckpt}'
    python stages/analyze.py rollout_error compare='{edm_N8: {path: stage, sampler: {num_steps: 8}}}'
    python stages/analyze.py rollout_error policy=checkpoints/maze2d-umaze/policy/td3bc-none/seed0/last.ckpt
    python stages/analyze.py iterations policy=checkpoints/maze2d-umaze/policy/td3bc-dydiff/seed0/last.ckpt
                                                                 # Fig. 7 (+ Fig. 9 in mazes), M = 0..5
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from dydiff.checkpoints import pretrain_path
from dydiff.diagnostics import run_refinement_error, run_rollout_error
from dydiff.sources import load_dataset

MODES = ("rollout_error", "iterations")


def run(cfg: DictConfig) -> dict:
    c = OmegaConf.to_container(cfg, resolve=True)
    if c["mode"] not in MODES:
        raise ValueError(f"unknown analysis {c['mode']!r}; available: {', '.join(MODES)}")
    if c["mode"] == "iterations" and not c["policy"]:
        raise ValueError("analyze.py iterations needs policy=<a stage-2 checkpoint, e.g. "
                         "checkpoints/maze2d-umaze/policy/td3bc-dydiff/seed0/last.ckpt>")
    ds = load_dataset(data_dir=c["data_dir"], **c["dataset"])
    pretrain = pretrain_path(c)
    policy = None
    if c["policy"]:
        from dydiff.algos import load_policy  # stage 2

        module = load_policy(c["policy"])
        policy = lambda obs: module.act(obs, deterministic=True)  # noqa: E731
    if c["mode"] == "iterations":
        return run_refinement_error(pretrain, ds, policy, c["out"] or Path(c["policy"]).parent, c["iterations"],
                                    c["windows"], c["seed"], c["blend"])
    return run_rollout_error(pretrain, ds, c["windows"], c["seed"], c["log_dir"], policy, c["compare"],
                             c["spread_samples"], c["cost_trajectories"])


@hydra.main(config_path="../conf", config_name="analyze", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    if len(sys.argv) > 1 and "=" not in sys.argv[1] and not sys.argv[1].startswith("-"):
        sys.argv[1] = f"mode={sys.argv[1]}"  # `analyze.py rollout_error ...`
    main()
