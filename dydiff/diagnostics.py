"""The rollout-error diagnostic (paper Appendix D.3, Fig. 4): is the DM a better long-horizon dynamics model
than the single-step ensemble, measured against the real simulator?

For K action sequences from held-out windows (or from a policy acting in the ensemble), execute the actions
from s_0 in the real Gymnasium simulator, and compare per step t:
  e_m,t = ‖s_m,t − s_t‖²  (the ensemble rolled out autoregressively with the same actions)
  e_d,t = ‖s_d,t − s_t‖²  and  E_d,t = Σ_{i≤t} e_d,i  (the DM sampling s_1..s_L given s_0 and the actions)
averaged over the K sequences, in original units and in the window normaliser's units.

Beside the errors, for every model: the spread between ``spread_samples`` samples for the same s_0 and actions
(per step, Σ over dimensions of the across-sample variance, averaged over sequences; 0 for a deterministic
model; the ensemble's from its random elite per step, its mean, as synthesis rolls it out) and the seconds it
takes to make ``cost_trajectories`` trajectories of length L (the K sequences tiled), on this machine's threads.

The ``iterations`` analysis (paper Fig. 7, Figs. 8-9) follows DyDiff's own trajectories instead: the policy
acts in the ensemble from held-out s_0, then the DM and the policy refine them M times (Eqs. 7-9). After each
iteration m the real simulator executes that iteration's actions from s_0, and
  total MSE_m = mean over K of Σ_{t=1..L} ‖ŝ_t^(m) − s_t^(m)‖²
(raw and normalised units); in mazes also the number of legal trajectories (no state inside a wall). Beside it,
what TD learning sees of each synthetic transition (ŝ_t, a_t, ŝ_{t+1}): the real simulator set to ŝ_t and stepped
with a_t, and
  one-step MSE_m = mean over K and t of ‖ŝ_{t+1}^(m) − f(ŝ_t^(m), a_t^(m))‖²
(raw and normalised units) and its median over transitions (raw). A trajectory near the real one on the whole
can still jitter from step to step; a few transitions through a wall can dominate the mean.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dydiff.data.dataset import OfflineDataset
from dydiff.io import write_json
from dydiff.synthesis.refine import ensemble_rollout, refine


def heldout_windows(ds: OfflineDataset, episodes, horizon: int, k: int, seed: int = 0):
    """K random full-length windows (no padding) inside the held-out episodes: s0 (K, obs), actions (K, L, act),
    and the dataset row index of each s0."""
    starts = [np.arange(s, e - horizon + 1) for s, e in zip(ds.episode_starts[episodes], ds.episode_ends[episodes],
                                                             strict=True) if e - s >= horizon]
    if not starts:
        raise ValueError(f"no held-out episode is {horizon} steps long: lower the horizon or hold out more")
    starts = np.concatenate(starts)
    rows = np.sort(np.random.default_rng(seed).choice(starts, min(k, len(starts)), replace=False))
    actions = np.stack([ds.actions[r : r + horizon] for r in rows])
    return ds.observations[rows], actions, rows


def simulate(ds: OfflineDataset, s0: np.ndarray, actions: np.ndarray, rows=None) -> tuple[np.ndarray, int]:
    """Execute each action sequence from s0 in the real simulator: states (K, L+1, obs), and how many starts
    were inexact (a clipped velocity without stored qpos/qvel)."""
    task, env = ds.task, ds.task.make_env()
    env.reset(seed=0)
    out, inexact = np.empty((len(s0), actions.shape[1] + 1, task.obs_dim), np.float32), 0
    for k in range(len(s0)):
        inexact += not (ds.set_state(env, rows[k]) if rows is not None else task.set_state(env, s0[k]))
        out[k, 0] = s0[k]
        for t in range(actions.shape[1]):
            out[k, t + 1] = task.step_state(env, actions[k, t])
    env.close()
    return out, inexact


def one_step(ds: OfflineDataset, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Each transition's squared error against the real simulator set to its state: ‖s_{t+1} − f(s_t, a_t)‖²
    per dimension, (K, L, obs) from states (K, L+1, obs) and actions (K, L, act): every transition ``simulate``d
    as a one-step sequence."""
    k, n, d = states[:, 1:].shape
    nxt = simulate(ds, states[:, :-1].reshape(-1, d), actions.reshape(k * n, 1, -1))[0][:, 1]
    return (states[:, 1:] - nxt.reshape(k, n, d)) ** 2


def errors(pred: np.ndarray, true: np.ndarray, scale: np.ndarray) -> dict:
    """Per-step squared errors summed over dimensions, averaged over sequences: raw and normalised units."""
    d = pred - true
    e = (d**2).sum(-1).mean(0)
    e_norm = ((d / scale) ** 2).sum(-1).mean(0)
    return {"e": e.tolist(), "e_norm": e_norm.tolist(), "E": np.cumsum(e).tolist(),
            "E_norm": np.cumsum(e_norm).tolist()}


def spread(sample: Callable, s0: torch.Tensor, actions: torch.Tensor, generator, n: int = 8) -> list:
    """Per-step Σ_d Var over ``n`` samples of ``sample(s0, actions, generator)`` (unbiased), mean over sequences."""
    x = torch.stack([sample(s0, actions, generator).double() for _ in range(n)])
    return x.var(0).sum(-1).mean(0).tolist()


def seconds(sample: Callable, s0: torch.Tensor, actions: torch.Tensor, generator, n: int) -> float:
    """Wall seconds to sample ``n`` trajectories (the sequences tiled to n)."""
    idx = torch.arange(n) % len(s0)
    start = time.perf_counter()
    sample(s0[idx], actions[idx], generator)
    return time.perf_counter() - start


def rollout_error(pretrained, ds: OfflineDataset, windows: int = 64, seed: int = 0, policy: Callable | None = None,
                  denoisers: dict | None = None, out_dir: str | Path | None = None, writer=None,
                  spread_samples: int = 8, cost_trajectories: int = 2048) -> dict:
    """Run the diagnostic. ``denoisers`` maps labels to trajectory models (default: the stage-1 DM);
    ``spread_samples`` / ``cost_trajectories`` 0 skip the spread and the cost."""
    denoisers = denoisers or {pretrained.denoiser.kind: pretrained.denoiser}
    dyn, horizon = pretrained.dynamics, next(iter(denoisers.values())).horizon
    s0, actions, rows = heldout_windows(ds, pretrained.manifest["holdout_episodes"], horizon, windows, seed)
    g = torch.Generator().manual_seed(seed)
    s0_t = torch.as_tensor(s0)
    if policy is not None:  # actions from the policy in the ensemble; the real simulator replays them
        actions = ensemble_rollout(dyn, policy, s0_t, horizon, g)[1].numpy()  # the paper's protocol
    true, inexact = simulate(ds, s0, actions, rows)
    act_t = torch.as_tensor(actions, dtype=torch.float32)
    own = lambda: torch.Generator().manual_seed(seed + 1)  # noqa: E731  (each model its own draws: a model's
    preds = {"ensemble": dyn.rollout(s0_t, act_t, own()).numpy()}  # numbers do not depend on the others compared)
    for label, model in denoisers.items():
        preds[label] = model.sample(s0_t, act_t, own()).float().numpy()
    scale = np.asarray(pretrained.normalizer.scale[: ds.task.obs_dim], np.float32)
    report = {"horizon": horizon, "windows": len(s0), "actions": "policy" if policy else "held-out dataset",
              "inexact_starts": inexact, "models": {k: errors(v, true, scale) for k, v in preds.items()}}
    if ds.task.is_maze:
        for k, v in preds.items():
            report["models"][k]["e_pos"] = ((v[..., :2] - true[..., :2]) ** 2).sum(-1).mean(0).tolist()
            report["models"][k]["in_wall"] = int(ds.task.grid.in_wall(v[:, 1:, :2]).sum())
        report["true_in_wall"] = int(ds.task.grid.in_wall(true[:, 1:, :2]).sum())
    dm = next(iter(denoisers))
    e_m, E_d, e_d = (report["models"]["ensemble"]["e"][-1], report["models"][dm]["E"][-1],
                     report["models"][dm]["e"][-1])
    samplers = {"ensemble": dyn.rollout, **{k: m.sample for k, m in denoisers.items()}}
    for k, f in samplers.items():
        if spread_samples > 1:
            report["models"][k]["spread"] = spread(f, s0_t, act_t, own(), spread_samples)
        if cost_trajectories:
            report["models"][k]["seconds"] = seconds(f, s0_t, act_t, own(), cost_trajectories)
    report["spread_samples"], report["cost_trajectories"] = spread_samples, cost_trajectories
    report["threads"] = torch.get_num_threads()
    report["summary"] = {"e_m_L": e_m, "E_d_L": E_d, "e_d_L": e_d, "E_d_over_e_m": E_d / e_m,
                         "e_d_over_e_m": e_d / e_m}
    if out_dir is not None:
        write_json(Path(out_dir) / "rollout_error.json", report, indent=1)
    if writer is not None:
        for k, m in report["models"].items():
            for t in range(1, horizon + 1):
                writer.add_scalars("rollout_error/e", {k: m["e"][t]}, t)
                writer.add_scalars("rollout_error/E", {k: m["E"][t]}, t)
        writer.flush()
    return report


def refinement_error(pretrained, ds: OfflineDataset, policy: Callable, iterations: int = 5, windows: int = 64,
                     seed: int = 0, blend: float = 0.5, keep_xy: int = 64) -> dict:
    """The ``iterations`` analysis (module docstring): one entry per iteration m = 0..M, plus the (x, y) of the
    first ``keep_xy`` trajectories per iteration in mazes (for the trajectory figure)."""
    den, dyn = pretrained.denoiser, pretrained.dynamics
    s0, _, rows = heldout_windows(ds, pretrained.manifest["holdout_episodes"], den.horizon, windows, seed)
    g = torch.Generator().manual_seed(seed)
    states, actions = ensemble_rollout(dyn, policy, torch.as_tensor(s0), den.horizon, g)
    scale = np.asarray(pretrained.normalizer.scale[: ds.task.obs_dim], np.float32)
    report = {"horizon": den.horizon, "windows": len(s0), "blend": blend, "iterations": [], "xy": []}
    for m in range(iterations + 1):
        if m:
            states, actions, _ = refine(den, policy, states, actions, 1, blend, g)
        pred, act = states.float().numpy(), actions.float().numpy()
        true, inexact = simulate(ds, s0, act, rows)
        d, step = pred[:, 1:] - true[:, 1:], one_step(ds, pred, act)
        entry = {"iteration": m, "total_mse": float((d**2).sum(-1).sum(1).mean()),
                 "total_mse_norm": float(((d / scale) ** 2).sum(-1).sum(1).mean()), "inexact_starts": inexact,
                 "one_step_mse": float(step.sum(-1).mean()), "one_step_median": float(np.median(step.sum(-1))),
                 "one_step_mse_norm": float((step / scale**2).sum(-1).mean())}
        if ds.task.is_maze:
            entry["legal"] = int(ds.task.grid.legal(pred[:, 1:, :2]).sum())
            entry["true_legal"] = int(ds.task.grid.legal(true[:, 1:, :2]).sum())
            report["xy"].append(pred[:keep_xy, :, :2].round(4).tolist())
        report["iterations"].append(entry)
    return report


def summary_line(report: dict) -> str:
    s, L = report["summary"], report["horizon"]
    line = (f"rollout error at t = L = {L} over {report['windows']} {report['actions']} sequences: "
            f"ensemble e_m = {s['e_m_L']:.4g}, DM E_d = {s['E_d_L']:.4g} (E_d/e_m = {s['E_d_over_e_m']:.3g}), "
            f"DM per-step e_d = {s['e_d_L']:.4g} (e_d/e_m = {s['e_d_over_e_m']:.3g})")
    if "true_in_wall" in report:
        line += "; states in walls: " + ", ".join(f"{k} {m['in_wall']}" for k, m in report["models"].items())
    return line


def table(report: dict) -> str:
    """The models side by side as a Markdown table: e at t = 1, L/2, L, E(L), states in walls (mazes), the
    spread at L, the cost, and the share of steps t ≥ L/2 where the model is at least as accurate as the
    ensemble (the long-horizon claim of Theorem 1 / Fig. 4, per step)."""
    L = report["horizon"]
    head = ["model", "e(1)", f"e({L // 2})", f"e({L})", f"E({L})"]
    head += ["in walls"] * ("true_in_wall" in report) + [f"spread({L})", f"s / {report.get('cost_trajectories')}"]
    head += ["share of t ≥ L/2 with e ≤ e_m"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    e_m = report["models"]["ensemble"]["e"]
    for k, m in report["models"].items():
        cells = [k] + [f"{m['e'][t]:.4g}" for t in (1, L // 2, L)] + [f"{m['E'][L]:.4g}"]
        cells += [str(m["in_wall"])] if "true_in_wall" in report else []
        cells += [f"{m['spread'][L]:.3g}" if "spread" in m else "", f"{m['seconds']:.2f}" if "seconds" in m else ""]
        cells += [f"{np.mean([m['e'][t] <= e_m[t] for t in range(L // 2, L + 1)]):.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def run_rollout_error(pretrain_dir: str | Path, ds: OfflineDataset, windows: int = 64, seed: int = 0,
                      log_dir: str = "runs", policy: Callable | None = None, compare: dict | None = None,
                      spread_samples: int = 8, cost_trajectories: int = 2048) -> dict:
    """Load the stage-1 models, run the diagnostic, write JSON beside them and curves to TensorBoard, print the
    summary line and the table. ``compare`` maps extra labels to denoiser checkpoints, or to
    ``{path: <checkpoint>, sampler: {<edm.sample keyword or average>: value}}``, reported beside the stage's DM."""
    from torch.utils.tensorboard import SummaryWriter

    from dydiff.checkpoints import load_module, load_pretrained

    pre = load_pretrained(pretrain_dir, ds)
    denoisers = {pre.denoiser.kind: pre.denoiser}
    for label, spec in (compare or {}).items():
        spec = spec if isinstance(spec, dict) else {"path": spec}
        model = pre.denoiser if spec["path"] in ("", "stage", None) else load_module(spec["path"]).model.eval()
        if spec.get("sampler"):
            model = copy.copy(model)  # the same weights, its own sampler settings
            model.sampler = {**model.sampler, **spec["sampler"]}
        denoisers[label] = model
    writer = SummaryWriter(str(Path(log_dir) / Path(pretrain_dir).parent.name / "pretrain" / "rollout_error"))
    report = rollout_error(pre, ds, windows, seed, policy, denoisers, pretrain_dir, writer, spread_samples,
                           cost_trajectories)
    writer.close()
    from dydiff import figures

    figures.save(figures.rollout_error(report, f"{ds.task.name}: rollout error against the real simulator"),
                 Path(pretrain_dir) / "rollout_error.png")
    print(summary_line(report))
    print(table(report))
    return report


def run_refinement_error(pretrain_dir: str | Path, ds: OfflineDataset, policy: Callable, out_dir: str | Path,
                         iterations: int = 5, windows: int = 64, seed: int = 0, blend: float = 0.5) -> dict:
    """Load the stage-1 models, run the ``iterations`` analysis, write refinement_error.json and the figures
    (Fig. 7; Fig. 9 in mazes) into ``out_dir``, print one line per iteration."""
    from dydiff import figures
    from dydiff.checkpoints import load_pretrained

    report = refinement_error(load_pretrained(pretrain_dir, ds), ds, policy, iterations, windows, seed, blend)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "refinement_error.json", report)
    figures.save(figures.refinement_error(report, f"{ds.task.name}: total MSE over refinement"),
                 out / "refinement_error.png")
    if report["xy"]:
        legal = [r["legal"] for r in report["iterations"]]
        fig = figures.maze_trajectories(ds.task.grid, [np.asarray(xy) for xy in report["xy"]],
                                        title=f"{ds.task.name}: {len(report['xy'][0])} synthetic trajectories "
                                              f"(legal counts over all {report['windows']})", legal=legal)
        figures.save(fig, out / "refinement_trajectories.png")
    for r in report["iterations"]:
        print(f"iteration {r['iteration']}: total trajectory MSE {r['total_mse']:.4g} (normalised "
              f"{r['total_mse_norm']:.4g}), one-step MSE {r['one_step_mse']:.4g} (normalised "
              f"{r['one_step_mse_norm']:.4g}, median {r['one_step_median']:.3g})"
              + (f", legal {r['legal']}/{report['windows']}" if "legal" in r else ""))
    return report
