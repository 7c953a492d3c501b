"""The report's figures as PNG (matplotlib, Agg backend: no display needed):

  learning curves: normalized score (mean ± std over seeds) against gradient updates, one line per data source
  Fig. 3    ablation curves: normalized score (mean ± std over seeds) against M, L, η and α
  Fig. 4    rollout error over the horizon: the ensemble's per-step e_m,t and the DM's e_d,t and E_d,t
  Fig. 7    total trajectory MSE against the refinement iteration (0 = the ensemble's rollout)
  Figs. 8-9 maze trajectories over the walls, one panel per refinement iteration, with the legal count
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def to_image(fig) -> np.ndarray:
    """The figure as an (H, W, 3) uint8 array (for TensorBoard's add_image)."""
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return img


def rollout_error(report: dict, title: str = ""):
    """Fig. 4 from a ``rollout_error.json``: per-step error of every model, and the DM's accumulated error."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, m in report["models"].items():
        t = np.arange(len(m["e_norm"]))
        a.plot(t[1:], m["e_norm"][1:], label=name)
        b.plot(t[1:], m["E_norm"][1:], label=name)
    a.set(yscale="log", xlabel="rollout step t", ylabel="per-step error e_t (normalised units)")
    b.set(yscale="log", xlabel="rollout step t", ylabel="accumulated error E_t (normalised units)")
    a.legend()
    fig.suptitle(title or f"rollout error against the real simulator ({report['windows']} {report['actions']} "
                 f"sequences)")
    return fig


def refinement_error(report: dict, title: str = ""):
    """Fig. 7 from a ``refinement_error.json``: total trajectory MSE per iteration (and the legal share in mazes)."""
    it = [r["iteration"] for r in report["iterations"]]
    fig, a = plt.subplots(figsize=(5, 3.6))
    a.plot(it, [r["total_mse_norm"] for r in report["iterations"]], "o-", label="total MSE")
    a.set(xlabel="refinement iteration m (0 = ensemble rollout)", ylabel="total trajectory MSE (normalised)",
          xticks=it)
    if "legal" in report["iterations"][0]:
        b = a.twinx()
        b.plot(it, [r["legal"] / report["windows"] for r in report["iterations"]], "s--", color="tab:green")
        b.set_ylabel("legal trajectories (share)", color="tab:green")
        b.set_ylim(0, 1.05)
    fig.suptitle(title or f"refinement against the real simulator ({report['windows']} trajectories)")
    return fig


def maze_trajectories(maze, history: list[np.ndarray], legal: list[int] | None = None,
                      labels: list[str] | None = None, title: str = ""):
    """Figs. 8-9: the (x, y) of each trajectory (K, T, 2) over the maze, one panel per entry of ``history``."""
    n = len(history)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    walls, extent = maze.image()  # in the maze's frame: D4RL's walls sit 0.2 off its cell grid
    for i, (ax, xy) in enumerate(zip(axes[0], history, strict=True)):
        ax.imshow(walls, cmap="Greys", extent=extent, origin="lower", vmin=0, vmax=1.5)
        ok = maze.legal(xy)
        for k in range(len(xy)):
            ax.plot(xy[k, :, 0], xy[k, :, 1], lw=0.8, alpha=0.8, color="tab:blue" if ok[k] else "tab:red")
        ax.scatter(xy[:, 0, 0], xy[:, 0, 1], s=6, color="black", zorder=3)
        label = labels[i] if labels else ("ensemble" if i == 0 else f"iteration {i}")
        count = legal[i] if legal is not None else int(ok.sum())
        ax.set_title(f"{label}: {count} legal", fontsize=9)
        ax.set(xlim=extent[:2], ylim=extent[2:], xticks=[], yticks=[])
    if title:
        fig.suptitle(title)
    return fig


def ablation(curves: dict, title: str = ""):
    """Fig. 3: ``curves`` maps a parameter name to [(value, mean, std, seeds), ...]."""
    n = max(1, len(curves))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    for i, (ax, (name, pts)) in enumerate(zip(axes[0], curves.items(), strict=False)):
        x = np.arange(len(pts))
        m, s = np.array([p[1] for p in pts]), np.array([p[2] for p in pts])
        ax.plot(x, m, "o-")
        ax.fill_between(x, m - s, m + s, alpha=0.25)
        ax.set(xticks=x, xticklabels=[str(p[0]) for p in pts], xlabel=name, ylabel="normalized score" if i == 0
               else None)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(curves: dict, title: str = ""):
    """``curves`` maps a data source to [(updates, mean, std, seeds), ...]."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, pts in curves.items():
        u, m, s = (np.array([p[i] for p in pts], dtype=np.float64) for i in range(3))
        ax.plot(u, m, label=f"{name} ({max(p[3] for p in pts)} seeds)")
        ax.fill_between(u, m - s, m + s, alpha=0.2)
    ax.set(xlabel="gradient updates", ylabel="normalized score")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
