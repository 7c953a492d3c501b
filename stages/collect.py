"""Stage 0: build or load a dataset, print its summary and reference scores, and evaluate the random
policy (and, on mazes, the noiseless waypoint controller by D4RL's reference protocol) in the real environment.

    python stages/collect.py dataset=maze2d-medium
    python stages/collect.py dataset=hopper-medium-v2          # a D4RL file in ~/.d4rl/datasets
    python stages/collect.py dataset=maze2d-umaze export_minari=dydiff/maze2d-umaze/cpu-v0
    python stages/collect.py dataset=builtin-hopper-medium-replay   # trains SAC first (resumes if interrupted)
"""

from __future__ import annotations

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from dydiff.builtin.maze import reference_returns
from dydiff.data.minari_io import write_minari
from dydiff.sources import load_dataset


def run(cfg: DictConfig) -> dict:
    ds = load_dataset(data_dir=cfg.data_dir, progress=cfg.progress, **OmegaConf.to_container(cfg.dataset,
                                                                                            resolve=True))
    print(ds.describe())
    out = {"summary": ds.summary()}
    task, n = ds.task, cfg.eval_episodes
    returns = reference_returns(task, n, cfg.seed) if n else {}
    for label, r in returns.items():
        s = task.normalized_score(r, ds.ref_random, ds.ref_expert)
        out[label] = {"return_mean": float(r.mean()), "return_std": float(r.std()), "score_mean": float(s.mean()),
                      "returns": r.tolist()}
        half = 1.96 * r.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        print(f"{label:>12}: return {r.mean():8.2f} ± {r.std():6.2f} (mean's 95% interval ±{half:.2f})   "
              f"normalized score {s.mean():7.2f} ± {s.std():6.2f}   ({n} episodes)")
    if returns:
        refs = (f"D4RL {task.ref_random:g} / {task.ref_expert:g}" if task.maze_frame != "gymnasium"
                else f"this dataset's references {ds.ref_random:.2f} / {ds.ref_expert:.2f}")
        print("measured: " + ", ".join(f"{k} {r.mean():.2f}" for k, r in returns.items()) + f" ({refs})")
    if cfg.export_minari:
        write_minari(ds, cfg.export_minari)
        print(f"exported to Minari dataset {cfg.export_minari}")
    return out


@hydra.main(config_path="../conf", config_name="collect", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
