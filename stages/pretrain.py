"""Stage 1: train the EDM trajectory denoiser, the dynamics ensemble and the reward model, one Trainer each,
then run the rollout-error diagnostic against the real simulator.

    python stages/pretrain.py                                   # maze2d-umaze, cpu preset
    python stages/pretrain.py dataset=maze2d-medium models=[denoiser] resume=true
    python stages/pretrain.py preset=paper trainer=gpu
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from dydiff.checkpoints import pretrain_path, write_manifest
from dydiff.data.windows import fit_window_normalizer
from dydiff.diagnostics import run_rollout_error
from dydiff.io import locked_on_rank_zero
from dydiff.lightning.trainer import set_threads
from dydiff.settings import check_pretrain
from dydiff.sources import load_dataset
from dydiff.stage1 import MODULES, Stage1Data
from dydiff.stage1.train import holdout_episodes, train_model


def run(cfg: DictConfig) -> dict:
    c = OmegaConf.to_container(cfg, resolve=True)
    set_threads(c["threads"])
    check_pretrain(c, MODULES)
    ds = load_dataset(data_dir=c["data_dir"], **c["dataset"])
    print(ds.describe())
    out = pretrain_path(c)
    with locked_on_rank_zero(out / "stage1"):  # two stage 1 runs into one folder: the second waits for the first
        return train_all(c, ds, out)


def train_all(c: dict, ds, out) -> dict:
    held = holdout_episodes(ds, c["seed"], **c["holdout"])
    norm = fit_window_normalizer(ds, c["normalizer"])
    write_manifest(out, ds, held, norm.state_dict(), {m: c[m] for m in c["models"]}, c["horizon"])
    data = Stage1Data(ds, held, c["horizon"], norm, c["pad_value"], c["val_windows"], c["seed"])
    trained = {}
    for i, name in enumerate(c["models"], 1):
        print(f"stage 1, model {i}/{len(c['models'])}: {name}", flush=True)
        precision = c["trainer"]["precision"] if MODULES[name].mixed_precision else "32-true"
        trainer_kw = {**c[name]["trainer"], **c["trainer"], "precision": precision, "progress": c["progress"]}
        module, trainer = train_model(name, data, out, c[name]["module"], trainer_kw, c["resume"], c["log_dir"])
        trained[name] = {k: float(v) for k, v in trainer.callback_metrics.items()}
        print(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in trained[name].items()))
    result = {"checkpoints": str(out), "metrics": trained}
    if c["rollout_error"]["enabled"] and {"denoiser", "dynamics"} <= set(c["models"]):
        re = c["rollout_error"]
        result["rollout_error"] = run_rollout_error(out, ds, re["windows"], re["seed"], c["log_dir"],
                                                    spread_samples=re["spread_samples"],
                                                    cost_trajectories=re["cost_trajectories"])
    return result


@hydra.main(config_path="../conf", config_name="pretrain", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
