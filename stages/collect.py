"""Stage 0: build or load a dataset, print its summary and reference scores, and evaluate the random
policy (and, on mazes, the noiseless waypoint controller) in the real environment.

    python stages/collect.py dataset=maze2d-medium
    python stages/collect.py dataset=hopper-medium-v2          # a D4RL file in ~/.d4rl/datasets
    python stages/collect.py dataset=maze2d-umaze export_minari=dydiff/maze2d-umaze/cpu-v0
    python stages/collect.py dataset=builtin-hopper-medium-replay   # trains SAC first (resumes if interrupted)
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from dydiff.builtin.maze import expert_policy
from dydiff.data.minari_io import write_minari
from dydiff.envs.evaluation import evaluate, random_policy
from dydiff.sources import load_dataset


def run(cfg: DictConfig) -> dict:
    ds = load_dataset(data_dir=cfg.data_dir, progress=cfg.progress, **OmegaConf.to_container(cfg.dataset,
                                                                                            resolve=True))
    print(ds.describe())
    out = {"summary": ds.summary()}
    task, n = ds.task, cfg.eval_episodes
    policies = {"random": random_policy(task, cfg.seed)}
    if task.is_maze:
        policies["expert (noiseless controller)"] = expert_policy(task, n)
    for label, policy in policies.items() if n else ():
        r = evaluate(policy, task, n, cfg.seed, ds.ref_random, ds.ref_expert)
        out[label.split()[0]] = r.summary()
        print(f"{label:>30}: return {r.return_mean:8.2f} ± {r.return_std:6.2f}   "
              f"normalized score {r.score_mean:7.2f} ± {r.score_std:6.2f}   ({n} episodes)")
    if cfg.export_minari:
        write_minari(ds, cfg.export_minari)
        print(f"exported to Minari dataset {cfg.export_minari}")
    return out


@hydra.main(config_path="../conf", config_name="collect", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
