"""The lever tables of docs/results.md from the rollout-error JSON files here:
    python docs/results/rollout-error-levers-2026-12-02/table.py"""

import json
from pathlib import Path

HERE = Path(__file__).parent
LABELS = {"ensemble": "dynamics ensemble", "regressor": "regressor (cpu preset)", "causal_residual": "{base} (recipe as before)",
          "residual": "{base} (recipe as before)", "p_mean_0": "P_mean 0 (was −1.2)", "p_mean_-2": "P_mean −2",
          "p_std_2": "P_std 2 (was 1.2)", "ema_0.999": "EMA 0.999 (was 0.99)", "steps_24k": "2× updates: 24k",
          "batch64_48k": "batch 64 × 48k updates (same samples)", "batch64_16k": "batch 64 × 16.5k updates (same time)",
          "lr_4e-4": "lr 4e-4 (was 2e-4)", "lr_1e-4": "lr 1e-4",
          "unet_residual": "U-Net residual EDM (1.2k updates, 18 min)"}


def g(x):
    return f"{x:.3g}"


for task, base in (("maze", "causal residual EDM"), ("hopper", "residual EDM"), ("maze-lr", "causal residual EDM")):
    for src in ("dataset", "policy"):
        path = HERE / f"{task}-{src}.json"
        if not path.exists():
            continue
        d = json.loads(path.read_text())
        L, m = d["horizon"], d["models"]
        em, reg = m["ensemble"]["e"], m["regressor"]["e"][L]  # e[t], t = 0..L (e[0] = 0: s0 is given)
        print(f"\n{task}, {src} actions\n")
        cols = "| model | e(1) | e(32) | e(64) | E(64) |" + (" in walls |" if task.startswith("maze") else "") + \
            " spread(64) | s / 2048 | share of t ≥ L/2 with e ≤ e_m | e(L) / regressor's |"
        print(cols + "\n" + "|---" * (cols.count("|") - 1) + "|")
        for name, r in m.items():
            e = r["e"]
            share = sum(e[t] <= em[t] for t in range(L // 2, L + 1)) / (L - L // 2 + 1)
            walls = f" {r['in_wall']} |" if task.startswith("maze") else ""
            spread = r["spread"][-1] if isinstance(r["spread"], list) else r["spread"]
            print(f"| {LABELS.get(name, name).format(base=base)} | {g(e[1])} | {g(e[L // 2])} | {g(e[L])} | "
                  f"{g(r['E'][L])} |{walls} {g(spread)} | {r['seconds']:.2f} | {share:.2f} | {e[L] / reg:.2f} |")
