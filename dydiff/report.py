"""Tables of finished policy runs, as in the paper: normalized score (mean of the last 5 evaluations) mean ± std
over seeds per dataset × algorithm × data source, and the IQM with a stratified-bootstrap 95% interval
(Agarwal et al., 2021: the 25% trimmed mean; seeds resampled within each dataset); per pair of data sources the
paired per-seed differences (t and bootstrap intervals) and the probability of improvement; what the runs cost
(updates, wall time); the learning curves' 5-evaluation window means; given the runs' TensorBoard folders, what
the synthesis made, round by round (legal share, clipped states, ...). Figures: learning curves per dataset ×
algorithm, the ablation curves (Fig. 3) from DyDiff runs that differ in one setting, and, where the runs' folders
hold them, the stage-1 rollout error (Fig. 4) and the refinement analysis (Figs. 7, 9) of ``stages/analyze.py``."""

from __future__ import annotations

import csv
import glob
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

COLUMNS = {"none": "Base", "synther": "SynthER", "synther_filtered": "SynthER-f", "dydiff": "DyDiff",
           "real_env": "Real env"}


def expand(paths) -> list[Path]:
    """Files, folders or glob patterns as paths, each pattern's matches sorted; a pattern that matches nothing is kept
    as it is (so the caller's error names it)."""
    return [Path(m) for pattern in map(str, paths) for m in sorted(glob.glob(pattern)) or [pattern]]


def load_runs(paths) -> list[dict]:
    """Every ``summary.json`` under the given files, directories or glob patterns that has a score."""
    runs = []
    for p in expand(paths):
        for f in [p] if p.is_file() else sorted(p.rglob("summary.json")):
            s = json.loads(f.read_text())
            if s.get("last5_score_mean") is not None:
                runs.append({**s, "path": str(f)})
    return runs


def column(run: dict) -> str:
    synth = run["synth"]["name"] if isinstance(run.get("synth"), dict) else run.get("synth", "none")
    return COLUMNS.get(synth, synth) + (f" ({run['tag']})" if run.get("tag") else "")


def scores_by_cell(runs: list[dict]) -> dict:
    """{(dataset, algo, column): [score per seed]}."""
    cells = defaultdict(list)
    for r in runs:
        cells[(r["dataset"], r["algo"], column(r))].append(float(r["last5_score_mean"]))
    return cells


def table(runs: list[dict]) -> tuple[list[str], list[list[str]], list[list]]:
    """(header, rows of formatted cells, rows of raw (mean, std, n) or None). The best mean of each algorithm
    in a row is bold; the last row averages each column's means over the datasets it has."""
    cells = scores_by_cell(runs)
    datasets = sorted({d for d, _, _ in cells})
    order = list(COLUMNS.values())
    cols = sorted({(a, c) for _, a, c in cells}, key=lambda ac: (ac[0], order.index(ac[1]) if ac[1] in order
                                                                   else len(order), ac[1]))
    header = ["dataset"] + [f"{a} {c}" for a, c in cols]
    raw = [[(float(np.mean(v)), float(np.std(v)), len(v)) if (v := cells.get((d, a, c))) else None
            for a, c in cols] for d in datasets]
    avg = []
    for j in range(len(cols)):
        means = [row[j][0] for row in raw if row[j] is not None]
        avg.append((float(np.mean(means)), None, len(means)) if means else None)
    rows = []
    for name, r in [*zip(datasets, raw, strict=True), ("average", avg)]:
        best = {a: max((x[0] for (b, _), x in zip(cols, r, strict=True) if b == a and x), default=None)
                for a, _ in cols}
        out = [name]
        for (a, _), x in zip(cols, r, strict=True):
            if x is None:
                out.append("–")
                continue
            text = f"{x[0]:.1f}" + (f" ± {x[1]:.1f}" if x[1] is not None else "")
            out.append(f"**{text}**" if x[0] == best[a] else text)
        rows.append(out)
    return header, rows, [*raw, avg]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def iqm(x) -> float:
    """The interquartile mean: the mean of the middle 50% (25% trimmed from each end, fractional at the cut)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = len(x)
    lo, hi = 0.25 * n, 0.75 * n
    w = np.clip(np.minimum(np.arange(1, n + 1), hi) - np.maximum(np.arange(n), lo), 0, None)
    return float((w * x).sum() / w.sum())


def stratified_bootstrap_ci(strata: list, reps: int = 2000, seed: int = 0, level: float = 0.95) -> tuple:
    """IQM of all scores and its percentile interval, resampling the scores within each stratum (dataset)."""
    rng = np.random.default_rng(seed)
    strata = [np.asarray(s, dtype=np.float64) for s in strata]
    point = iqm(np.concatenate(strata))
    boots = [iqm(np.concatenate([s[rng.integers(len(s), size=len(s))] for s in strata])) for _ in range(reps)]
    a = (1 - level) / 2
    return point, float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def dataset_group(dataset: str, by: str) -> str:
    """'environment' → hopper / halfcheetah / walker2d / maze2d; 'type' → medium / medium-replay / … / maze."""
    name = dataset.removeprefix("builtin-").removeprefix("minari-").removesuffix("-v2")
    if name.startswith(("maze2d", "pointmaze")):
        return "maze2d" if by == "environment" else name.split("-", 1)[1]
    env, kind = name.split("-", 1)
    return env if by == "environment" else kind


def iqm_table(runs: list[dict], by: str = "environment", reps: int = 2000, seed: int = 0) -> list[dict]:
    """One row per (group, algorithm, column): IQM and 95% CI over every run, stratified by dataset."""
    cells = scores_by_cell(runs)
    groups = defaultdict(lambda: defaultdict(list))
    for (d, a, c), v in cells.items():
        groups[(dataset_group(d, by), a, c)][d] = v
    out = []
    for (g, a, c), strata in sorted(groups.items()):
        point, lo, hi = stratified_bootstrap_ci(list(strata.values()), reps, seed)
        out.append({"group": g, "algo": a, "column": c, "iqm": point, "ci_low": lo, "ci_high": hi,
                    "runs": sum(len(v) for v in strata.values())})
    return out


ABLATIONS = {"M": ("synth", "iterations"), "L": ("synth", "horizon"), "eta": ("synth", "keep"),
             "alpha": ("real_ratio",), "filter": ("synth", "filter")}  # Fig. 3's settings, and DyDiff-H vs -S


def setting(run: dict, path: tuple):
    for k in path:
        run = run.get(k) if isinstance(run, dict) else None
    return run


def ablation_curves(runs: list[dict]) -> dict:
    """{(dataset, algo): {setting: [(value, mean, std, seeds), ...]}} over the DyDiff runs. A setting gets a
    curve where its runs differ in it; each curve holds the other settings at their most common values (the
    defaults of a one-at-a-time sweep). Std over seeds, ddof 0."""
    groups = defaultdict(list)
    for r in runs:
        if setting(r, ("synth", "name")) == "dydiff":
            groups[(r["dataset"], r["algo"])].append(r)
    out = {}
    for key, group in sorted(groups.items()):
        values = {n: [setting(r, p) for r in group] for n, p in ABLATIONS.items()}
        mode = {n: Counter(map(str, v)).most_common(1)[0][0] for n, v in values.items()}
        curves = {}
        for name, vs in values.items():
            if len(set(map(str, vs))) < 2:
                continue
            by = defaultdict(list)
            for i, (r, v) in enumerate(zip(group, vs, strict=True)):
                if all(str(values[o][i]) == mode[o] for o in ABLATIONS if o != name):
                    by[v].append(float(r["last5_score_mean"]))
            curves[name] = [(v, float(np.mean(x)), float(np.std(x)), len(x))
                            for v, x in sorted(by.items(), key=lambda kv: (str(type(kv[0])), kv[0]))]
        if curves:
            out[key] = curves
    return out


def write_figures(runs: list[dict], out: Path) -> dict:
    """Learning curves per (dataset, algorithm); Fig. 3 per (dataset, algorithm) with ablations; Fig. 4 from each
    dataset's stage-1 rollout_error.json; Figs. 7/9 from each run folder's refinement_error.json. Returns
    {figure: source}."""
    from dydiff import figures

    made = {}
    for (d, a), curves in learning_curves(runs).items():
        f = figures.save(figures.learning_curves(curves, f"{d} · {a}: normalized score (mean ± std over seeds)"),
                         out / f"learning_{d}_{a}.png")
        made[f.name] = {c: [list(p) for p in v] for c, v in curves.items()}
    for (d, a), curves in ablation_curves(runs).items():
        f = figures.save(figures.ablation(curves, f"{d} · {a} + DyDiff: ablations (mean ± std over seeds)"),
                         out / f"ablation_{d}_{a}.png")
        made[f.name] = {k: [list(p) for p in v] for k, v in curves.items()}
    seen = set()
    for r in runs:
        run_dir = Path(r["path"]).parent
        for src in (run_dir.parents[2] / "pretrain" / "rollout_error.json", run_dir / "refinement_error.json"):
            if src in seen or not src.exists():
                continue
            seen.add(src)
            rep = json.loads(src.read_text())
            if src.name == "rollout_error.json":
                f = figures.save(figures.rollout_error(rep, f"{r['dataset']}: rollout error (stage 1)"),
                                 out / f"rollout_error_{r['dataset']}.png")
            else:
                tag = "_".join(run_dir.parts[-2:])
                f = figures.save(figures.refinement_error(rep, f"{r['dataset']} {tag}: total MSE over refinement"),
                                 out / f"refinement_error_{r['dataset']}_{tag}.png")
            made[f.name] = str(src)
    return made


# Student's t, two-sided 95%: t_{0.975, df} for df = 1..30 (beyond: 1.96)
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def probability_of_improvement(a, b) -> float:
    """P(X_b > X_a) over all pairs of scores, ties counting one half (Agarwal et al., 2021: the Mann-Whitney U
    statistic over n·m)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(((b[None] > a[:, None]) + 0.5 * (b[None] == a[:, None])).mean())


def paired_differences(runs: list[dict], reps: int = 2000, seed: int = 0) -> list[dict]:
    """For each dataset × algorithm, every pair of data sources over the seeds both have (the same evaluation
    episodes, seeded by (seed, evaluation)): the per-seed differences b − a, their mean with a 95% t interval and a
    95% percentile-bootstrap interval (seeds resampled as pairs), and the probability of improvement P(b > a) with
    its bootstrap interval from the same resamples."""
    by = defaultdict(dict)
    for r in runs:
        by[(r["dataset"], r["algo"], column(r))][r["seed"]] = float(r["last5_score_mean"])
    out = []
    for (d, algo, a), sa in sorted(by.items()):
        for (d2, algo2, b), sb in sorted(by.items()):
            seeds = sorted(set(sa) & set(sb))
            if (d2, algo2) != (d, algo) or a >= b or len(seeds) < 2:
                continue
            xa, xb = np.array([sa[k] for k in seeds]), np.array([sb[k] for k in seeds])
            diff = xb - xa
            half = T975[min(len(diff) - 2, 29)] * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) <= 31 else \
                1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
            idx = np.random.default_rng(seed).integers(len(diff), size=(reps, len(diff)))
            boot_mean = diff[idx].mean(1)
            boot_poi = [probability_of_improvement(xa[i], xb[i]) for i in idx]
            out.append({"dataset": d, "algo": algo, "a": a, "b": b, "seeds": seeds, "differences": diff.tolist(),
                        "mean": float(diff.mean()), "ci_low": float(diff.mean() - half),
                        "ci_high": float(diff.mean() + half), "boot_low": float(np.quantile(boot_mean, 0.025)),
                        "boot_high": float(np.quantile(boot_mean, 0.975)),
                        "p_improve": probability_of_improvement(xa, xb),
                        "p_improve_low": float(np.quantile(boot_poi, 0.025)),
                        "p_improve_high": float(np.quantile(boot_poi, 0.975))})
    return out


def learning_curves(runs: list[dict]) -> dict:
    """{(dataset, algo): {column: [(updates, mean, std, seeds), ...]}}: the normalized score of every evaluation
    against the gradient updates it was made at, mean ± std over the seeds that reached it."""
    by = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in runs:
        for i, e in enumerate(r.get("evaluations") or []):
            by[(r["dataset"], r["algo"])][column(r)][e.get("updates", i)].append(float(e["score_mean"]))
    return {key: {c: [(u, float(np.mean(v)), float(np.std(v)), len(v)) for u, v in sorted(pts.items())]
                  for c, pts in sorted(cols.items())} for key, cols in sorted(by.items())}


def window_means(runs: list[dict], k: int = 5) -> dict:
    """{(dataset, algo): {column: [(first updates, last updates, mean), ...]}}: the learning curve's mean over seeds
    averaged over windows of ``k`` evaluations, counted back from the last, so the last window is the mean over seeds
    of the last-k score (a leading remainder of fewer than k evaluations is left out)."""
    return {key: {c: [(pts[i][0], pts[i + k - 1][0], float(np.mean([m for _, m, *_ in pts[i:i + k]])))
                      for i in range(len(pts) % k, len(pts) - k + 1, k)] for c, pts in cols.items()}
            for key, cols in learning_curves(runs).items()}


def costs(runs: list[dict]) -> list[dict]:
    """What each dataset × algorithm × data source cost, from ``summary.json``: runs, gradient updates per run,
    and wall seconds per run (a K-seed run's wall time divided by K: its seeds share one process)."""
    cells = defaultdict(list)
    for r in runs:
        if r.get("wall_s") is not None:
            cells[(r["dataset"], r["algo"], column(r))].append((r["updates"], r["wall_s"] / len(r.get("seeds") or [0])))
    return [{"dataset": d, "algo": a, "column": c, "runs": len(v), "updates": float(np.mean([u for u, _ in v])),
             "wall_s": float(np.mean([w for _, w in v]))} for (d, a, c), v in sorted(cells.items())]


def synthesis_log(log_dir: str | Path) -> dict:
    """{name: [(updates, mean over seeds), ...]}: a stage-2 TensorBoard folder's synthesis scalars (``synth/<name>``,
    or ``seed<k>/synth/<name>`` in a K-seed run), one point per synthesis round, averaged over the seeds that logged
    it. A resumed run's repeated rounds count once (the last value logged at a step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(log_dir), size_guidance={"scalars": 0}).Reload()
    by = defaultdict(lambda: defaultdict(list))
    for tag in tb.Tags()["scalars"]:
        head, sep, name = tag.partition("synth/")
        if sep and re.fullmatch(r"(seed\d+/)?", head):  # the prefixes of dydiff/lightning/evaluation.py
            for step, value in {e.step: e.value for e in tb.Scalars(tag)}.items():
                by[name][step].append(value)
    return {n: [(u, float(np.mean(v))) for u, v in sorted(pts.items())] for n, pts in sorted(by.items())}


def synthesis_windows(series: list[tuple], first: int = 10) -> dict:
    """(mean, min, max) of the per-round values over the first ``first`` rounds, the first half, the second half (the
    halves split at ⌊n/2⌋) and all rounds."""
    v = np.array([m for _, m in series])
    h = len(v) // 2
    parts = {f"rounds 1–{min(first, len(v))}": v[:first], f"rounds 1–{h}": v[:h],
             f"rounds {h + 1}–{len(v)}": v[h:], "all": v}
    return {k: (float(x.mean()), float(x.min()), float(x.max())) for k, x in parts.items() if len(x)}


def write_synthesis(logs, out: Path) -> dict:
    """synthesis.md: for each TensorBoard folder in ``logs`` (paths or glob patterns), each synthesis scalar's
    mean [min, max] over the rounds of each window of ``synthesis_windows``. A folder without synth/* scalars (a
    run without synthesis, e.g. Base matched by a glob over all arms) is skipped with a note; a path that is not a
    folder, or no folder having them, is an error."""
    folders = sorted(set(expand(logs)))
    missing = [str(f) for f in folders if not f.is_dir()]  # a typo or a pattern that matched nothing
    logged = {} if missing else {f: synthesis_log(f) for f in folders}
    if not any(logged.values()):
        raise FileNotFoundError(f"no synth/* scalars in {', '.join(missing or map(str, folders)) or logs}: logs= "
                                "takes stage-2 TensorBoard folders, e.g. runs/maze2d-umaze/policy/td3bc-dydiff/seed0")
    result, parts = {}, []
    for folder, series in logged.items():
        if not series:
            print(f"synthesis.md: skipped {folder} (no synth/* scalars: a run without synthesis)")
            continue
        label = "/".join(folder.parts[-2:])
        result[label] = {n: synthesis_windows(s) for n, s in series.items()}
        spans = list(dict.fromkeys(k for w in result[label].values() for k in w))
        parts.append(f"{label}: each synthesis scalar, mean over seeds per round; mean [min, max] over the rounds\n\n"
                     + markdown(["scalar", *spans], [[n, *[f"{w[k][0]:.3g} [{w[k][1]:.3g}, {w[k][2]:.3g}]"
                                                         if k in w else "–" for k in spans]]
                                                     for n, w in result[label].items()]))
    (out / "synthesis.md").write_text("\n".join(parts))
    return result


def write_report(runs: list[dict], out_dir: str | Path, reps: int = 2000, logs=()) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header, rows, _ = table(runs)
    (out / "table.md").write_text(markdown(header, rows))
    with open(out / "table.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *[[c.replace("**", "") for c in r] for r in rows]])
    result = {"table": {"header": header, "rows": rows}}
    for by in ("environment", "type"):
        rows_iqm = iqm_table(runs, by, reps)
        result[f"iqm_by_{by}"] = rows_iqm
        md = markdown(["group", "algo", "data", "IQM", "95% CI", "runs"],
                      [[r["group"], r["algo"], r["column"], f"{r['iqm']:.1f}",
                        f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}]", str(r["runs"])] for r in rows_iqm])
        (out / f"iqm_by_{by}.md").write_text(md)
    result["paired"] = paired_differences(runs, reps)
    (out / "paired.md").write_text(markdown(
        ["dataset", "algo", "b − a", "seeds", "mean difference", "95% bootstrap", "95% t interval",
         "P(b > a) [95%]"],
        [[p["dataset"], p["algo"], f"{p['b']} − {p['a']}", str(len(p["seeds"])), f"{p['mean']:+.1f}",
          f"[{p['boot_low']:+.1f}, {p['boot_high']:+.1f}]", f"[{p['ci_low']:+.1f}, {p['ci_high']:+.1f}]",
          f"{p['p_improve']:.2f} [{p['p_improve_low']:.2f}, {p['p_improve_high']:.2f}]"] for p in result["paired"]]))
    result["costs"] = costs(runs)
    (out / "costs.md").write_text(markdown(
        ["dataset", "algo", "data", "runs", "updates / run", "wall / run"],
        [[r["dataset"], r["algo"], r["column"], str(r["runs"]), f"{r['updates']:.0f}", f"{r['wall_s'] / 60:.1f} min"]
         for r in result["costs"]]))
    windows = window_means(runs)
    result["windows"] = {f"{d} {a}": cols for (d, a), cols in windows.items()}
    tables = []
    for (d, a), cols in windows.items():
        spans = sorted({w[:2] for ws in cols.values() for w in ws})
        means = {c: {w[:2]: w[2] for w in ws} for c, ws in cols.items()}
        tables.append(f"{d} · {a}: the mean over seeds of each 5-evaluation window, by gradient updates\n\n" + markdown(
            ["data", *[f"{u0 / 1000:g}k–{u1 / 1000:g}k" for u0, u1 in spans]],
            [[c, *[f"{m[span]:.1f}" if span in m else "–" for span in spans]] for c, m in means.items()]))
    (out / "curves.md").write_text("\n".join(tables))
    if logs:
        result["synthesis"] = write_synthesis(logs, out)
    result["figures"] = write_figures(runs, out)
    (out / "report.json").write_text(json.dumps(result, indent=1))
    return result
