"""Report: tables of finished policy runs (normalized score mean ± std over seeds, the paper's last-5
protocol) and IQM with stratified-bootstrap 95% intervals, by environment and by dataset type.

    python stages/report.py                                 # every run under checkpoints/
    python stages/report.py runs=[checkpoints/maze2d-umaze/policy] out=reports/maze
    python stages/report.py 'runs=[checkpoints/maze2d-*/policy/td3bc-*]' out=reports/maze_td3bc   # globs
    python stages/report.py ... 'logs=[runs/maze2d-medium/policy/td3bc-*/seeds-*]'   # + synthesis.md
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from dydiff.report import load_runs, markdown, write_report


def run(cfg: DictConfig) -> dict:
    runs = load_runs(list(cfg.runs))
    if not runs:
        raise FileNotFoundError(f"no finished run (summary.json with a score) under {list(cfg.runs)}")
    result = write_report(runs, cfg.out, cfg.bootstrap_reps, list(cfg.logs or []))
    print(markdown(result["table"]["header"], result["table"]["rows"]))
    print(f"{len(runs)} runs; tables, IQM and report.json in {cfg.out}/")
    return result


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
