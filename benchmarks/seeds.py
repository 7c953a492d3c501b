"""Wall time of one K-seed run (``seeds=[0..K-1]``: one batched model, synthesis and evaluation included)
against K single-seed runs one after another, with the same settings. Target: ≤ 0.5×. Default: the cpu preset,
maze2d-umaze, TD3+BC + DyDiff (needs `python stages/pretrain.py` first); extra arguments are policy overrides.
Runs write to a temporary folder; stage 1 is read from where the given settings point.

    python benchmarks/seeds.py                       # 5 seeds, the whole cpu-preset run (about an hour on 2 cores)
    python benchmarks/seeds.py --seeds 3 epochs=10   # a shorter measurement
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dydiff.checkpoints import pretrain_path  # noqa: E402
from stages.policy import run  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5, help="K")
    args, overrides = p.parse_known_args()
    overrides = ["synth=dydiff", "progress=false", *overrides]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("policy", overrides=overrides)
    pre = pretrain_path({"pretrain_dir": cfg.pretrain_dir, "checkpoint_dir": cfg.checkpoint_dir,
                         "dataset": {"name": cfg.dataset.name}})
    seeds = list(range(args.seeds))
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = [*overrides, f"checkpoint_dir={tmp}/ck", f"log_dir={tmp}/runs", f"pretrain_dir={pre}"]
        for label, runs in (("one process, K seeds", [[f"seeds=[{','.join(map(str, seeds))}]"]]),
                            ("K runs, one after another", [[f"seed={s}", "tag=single"] for s in seeds])):
            t0 = time.perf_counter()
            for extra in runs:
                with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
                    run(compose("policy", overrides=[*base, *extra]))
            times[label] = time.perf_counter() - t0
    print(f"{cfg.dataset.name}, preset {cfg.preset.name}, {cfg.algo.name} + {cfg.synth.name}, {cfg.epochs} epochs, "
          f"K = {args.seeds}")
    for label, s in times.items():
        print(f"{label:28} {s / 60:7.2f} min")
    a, b = times.values()
    print(f"ratio {a / b:.2f} (target ≤ 0.5)")


if __name__ == "__main__":
    main()
