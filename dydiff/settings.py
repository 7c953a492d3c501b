"""Start-up checks of a stage's settings (a plain dict, as the stages resolve them), before any data is loaded:
a bad value fails at once with a message that names the key, not at the first synthesis round."""

from __future__ import annotations

import json
from pathlib import Path


class SettingsError(ValueError):
    pass


def _check(ok: bool, key: str, value, rule: str) -> None:
    if not ok:
        raise SettingsError(f"{key}={value!r}: {rule}")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_policy(c: dict, pretrain_dir: str | Path | None = None) -> None:
    """The policy stage's settings; with ``pretrain_dir``, also that the horizon is the stage-1 model's."""
    for key in ("epochs", "batch_size", "eval_every"):
        _check(isinstance(c[key], int) and c[key] >= 1, key, c[key], "must be an integer ≥ 1")
    _check(isinstance(c["eval_episodes"], int) and c["eval_episodes"] >= 0, "eval_episodes", c["eval_episodes"],
           "must be an integer ≥ 0")
    seeds = c.get("seeds")
    _check(seeds is None or (isinstance(seeds, list) and len(seeds) >= 1 and len(set(seeds)) == len(seeds) and
                             all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in seeds)),
           "seeds", seeds, "must be null or a list of distinct integers ≥ 0, e.g. [0,1,2,3,4]")
    _check(isinstance(c["algo"]["steps_per_epoch"], int) and c["algo"]["steps_per_epoch"] >= 1,
           "algo.steps_per_epoch", c["algo"]["steps_per_epoch"], "must be an integer ≥ 1")
    _check(c.get("protocol", "equal") in ("equal", "official"), "protocol", c.get("protocol"),
           "must be equal or official")
    _check(_number(c["real_ratio"]) and 0 <= c["real_ratio"] <= 1, "real_ratio", c["real_ratio"],
           "α, the real share of each batch, must be in [0, 1]")
    s = c["synth"]
    if s["name"] == "none":
        return
    rules = {"real_ratio": (lambda v: _number(v) and 0 <= v <= 1, "α must be in [0, 1]"),
             "keep": (lambda v: _number(v) and 0 < v <= 1, "η, the kept share, must be in (0, 1]"),
             "iterations": (lambda v: isinstance(v, int) and v >= 0, "M must be an integer ≥ 0"),
             "horizon": (lambda v: isinstance(v, int) and v >= 1, "L must be an integer ≥ 1"),
             "temperature": (lambda v: _number(v) and v > 0, "the softmax temperature must be > 0"),
             "blend": (lambda v: _number(v) and 0 <= v <= 1, "must be in [0, 1]"),
             "filter": (lambda v: v in ("softmax", "hardmax", "none"), "must be softmax, hardmax or none"),
             "every": (lambda v: isinstance(v, int) and v >= 1, "must be an integer ≥ 1"),
             "start_epoch": (lambda v: isinstance(v, int) and v >= 0, "must be an integer ≥ 0"),
             "buffer_size": (lambda v: isinstance(v, int) and v >= 1, "must be an integer ≥ 1")}
    for key, (ok, rule) in rules.items():
        if key in s:
            _check(ok(s[key]), f"synth.{key}", s[key], rule)
    devices = c["trainer"].get("devices")
    world = devices if isinstance(devices, int) and devices > 0 else 1
    _check(isinstance(s["num_trajectories"], int) and s["num_trajectories"] >= world, "synth.num_trajectories",
           s["num_trajectories"], f"B_r must be an integer ≥ the number of processes ({world})")
    manifest = Path(pretrain_dir or "") / "manifest.json"
    if "horizon" in s and pretrain_dir is not None and manifest.exists():
        trained = json.loads(manifest.read_text()).get("horizon")
        _check(trained is None or trained == s["horizon"], "synth.horizon", s["horizon"],
               f"the stage-1 trajectory model in {pretrain_dir} was trained with L = {trained}; set horizon={trained}"
               f" or pretrain again with this horizon")


def check_pretrain(c: dict, models) -> None:
    _check(isinstance(c["horizon"], int) and c["horizon"] >= 1, "horizon", c["horizon"], "L must be an integer ≥ 1")
    unknown = [m for m in c["models"] if m not in models]
    _check(not unknown, "models", c["models"], f"unknown model(s) {unknown}; registered: {', '.join(models)}")
    d = c.get("denoiser", {})
    if "denoiser" in c["models"] and d["module"].get("kind") == "residual":
        steps, mean = d["trainer"]["max_epochs"] * d["trainer"]["steps_per_epoch"], d["module"]["mean_steps"]
        _check(isinstance(mean, int) and 1 <= mean < steps, "denoiser.module.mean_steps", mean,
               f"kind=residual trains μ for the first mean_steps updates and the residual EDM after: an integer in "
               f"[1, {steps}) (the run has {steps} steps)")
    f = c["holdout"]["fraction"]
    _check(_number(f) and 0 < f < 1, "holdout.fraction", f, "must be in (0, 1)")
    _check(isinstance(c["val_windows"], int) and c["val_windows"] >= 1, "val_windows", c["val_windows"],
           "must be an integer ≥ 1")
