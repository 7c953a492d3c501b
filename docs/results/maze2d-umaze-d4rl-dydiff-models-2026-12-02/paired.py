"""Paired per-seed differences of the last-5 scores between DyDiff arms (stdlib + numpy).

    python paired.py <policy folder, e.g. checkpoints/maze2d-umaze/policy>
"""

import json
import sys
from pathlib import Path

import numpy as np

ARMS = {"causal residual EDM": "td3bc-dydiff-cres", "regressor": "td3bc-dydiff-reg", "M = 0": "td3bc-dydiff-m0"}
T975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571}  # Student t, 97.5%, by n − 1 + 1 = n samples

root = Path(sys.argv[1] if len(sys.argv) > 1 else "checkpoints/maze2d-umaze/policy")
scores = {a: {int(p.parent.name[4:]): json.loads(p.read_text())["last5_score_mean"]
              for p in sorted((root / d).glob("seed*/summary.json"))} for a, d in ARMS.items()}
print("| arm | " + " | ".join(f"seed {s}" for s in sorted(scores["regressor"])) + " | mean |")
print("|---|" + "---|" * (len(scores["regressor"]) + 1))
for a, v in scores.items():
    print(f"| {a} | " + " | ".join(f"{v[s]:.1f}" if s in v else "" for s in sorted(scores["regressor"]))
          + f" | {np.mean(list(v.values())):.1f} |")
print()
print("| difference | seeds | per seed | mean | 95% t interval | share of seeds where better |")
print("|---|---|---|---|---|---|")
for x, y in [("causal residual EDM", "regressor"), ("causal residual EDM", "M = 0"), ("regressor", "M = 0")]:
    seeds = sorted(set(scores[x]) & set(scores[y]))
    d = np.array([scores[x][s] - scores[y][s] for s in seeds])
    half = T975[len(d)] * d.std(ddof=1) / np.sqrt(len(d))
    print(f"| {x} − {y} | {len(d)} | {', '.join(f'{v:.1f}' for v in d)} | {d.mean():.1f} | "
          f"[{d.mean() - half:.1f}, {d.mean() + half:.1f}] | {np.mean(d > 0):.2f} |")
