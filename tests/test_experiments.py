"""Every conf/experiment/*.yaml composes, and the first job of its sweep runs one smoke epoch.

The ablations sweep hopper-medium-replay; here their first job runs on the smoke maze2d-umaze instead (a
dataset override, as a user would give), so that all of them share one smoke stage 1.
"""

import json

import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir

STAGE = {  # experiment → the stage script it sweeps
    "maze_comparison": "policy", "locomotion_comparison": "policy", "ablation_iterations": "policy",
    "ablation_horizon_pretrain": "pretrain", "ablation_horizon": "policy", "ablation_keep": "policy",
    "ablation_real_ratio": "policy", "ablation_filter": "policy",
}
ON_MAZE = {"ablation_iterations", "ablation_horizon_pretrain", "ablation_horizon", "ablation_keep",
           "ablation_real_ratio", "ablation_filter"}


def first_job(name: str, tmp) -> tuple[dict, object]:
    """The sweep's parameters and the composed config of its first job (smoke preset, paths under tmp)."""
    base = [f"+experiment={name}", "preset=smoke", f"data_dir={tmp}/data", f"checkpoint_dir={tmp}/ck",
            f"log_dir={tmp}/runs", "progress=false"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        full = compose(STAGE[name], overrides=base, return_hydra_config=True)
        assert str(full.hydra.mode) == "RunMode.MULTIRUN"
        params = {k: str(v).split(",") for k, v in full.hydra.sweeper.params.items()}
        job = {k: v[0] for k, v in params.items()}
        if name in ON_MAZE:
            job["dataset"] = "maze2d-umaze"
        if STAGE[name] == "policy":
            job.update({"epochs": "1", "algo.steps_per_epoch": "3"})
        else:
            job.update({"rollout_error.enabled": "false"})
        return params, compose(STAGE[name], overrides=base + [f"{k}={v}" for k, v in job.items()])


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    """A shared folder with the smoke stage 1 of maze2d-umaze (L = 16) and the L ablation's first stage 1."""
    from stages.pretrain import run

    tmp = tmp_path_factory.mktemp("exp")
    params, cfg = first_job("ablation_horizon_pretrain", tmp)
    assert params == {"dataset": ["builtin-hopper-medium-replay"], "horizon": ["25", "50", "100", "200"]}
    assert cfg.pretrain_dir == f"{tmp}/ck/maze2d-umaze/pretrain-L25" and cfg.horizon == 25
    run(cfg)
    assert json.loads((tmp / "ck/maze2d-umaze/pretrain-L25/manifest.json").read_text())["models"]["denoiser"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        run(compose("pretrain", overrides=["preset=smoke", f"data_dir={tmp}/data", f"checkpoint_dir={tmp}/ck",
                                           f"log_dir={tmp}/runs", "progress=false", "rollout_error.enabled=false"]))
    return tmp


def test_every_experiment_is_covered():
    assert set(STAGE) == {p.stem for p in (ROOT / "conf/experiment").glob("*.yaml")}


@pytest.mark.parametrize("name, folder, settings", [
    ("maze_comparison", "maze2d-umaze/policy/td3bc-none", {}),
    ("locomotion_comparison", "builtin-hopper-medium/policy/td3bc-none", {}),
    ("ablation_iterations", "maze2d-umaze/policy/td3bc-dydiff-M0", {"iterations": 0}),
    ("ablation_horizon", "maze2d-umaze/policy/td3bc-dydiff-L25", {"horizon": 25}),
    ("ablation_keep", "maze2d-umaze/policy/td3bc-dydiff-eta0.2", {"keep": 0.2}),
    ("ablation_real_ratio", "maze2d-umaze/policy/td3bc-dydiff-alpha0.2", {}),
    ("ablation_filter", "maze2d-umaze/policy/td3bc-dydiff-hardmax", {"filter": "hardmax"}),
])
def test_first_job_of_each_experiment_runs_a_smoke_epoch(tmp, name, folder, settings):
    from stages.policy import run

    params, cfg = first_job(name, tmp)
    assert params["seed"] == ["0", "1", "2"] and len(params["algo"]) in (1, 3)
    summary = run(cfg)
    saved = json.loads((tmp / "ck" / folder / "seed0" / "summary.json").read_text())
    assert saved["last5_score_mean"] == summary["last5_score_mean"] and len(saved["evaluations"]) == 1
    assert {k: saved["synth"][k] for k in settings} == settings
    if name == "ablation_real_ratio":
        assert saved["real_ratio"] == 0.2
    ckpt = torch.load(tmp / "ck" / folder / "seed0" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["global_step"] > 0


def test_ablations_take_synth_keys_on_the_command_line():
    """The ablations choose synth=dydiff in their defaults, so `synth.<key>=…` is valid on the command line
    (with synth only a sweep value, composing would fail on synth=none's missing key)."""
    for name in ("ablation_iterations", "ablation_keep", "ablation_filter", "ablation_real_ratio", "ablation_horizon"):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("policy", overrides=[f"+experiment={name}", "synth.iterations=0", "synth.blend=1.0"])
        assert (cfg.synth.name, cfg.synth.iterations, cfg.synth.blend) == ("dydiff", 0, 1.0)


@pytest.mark.slow
def test_joblib_sweep_runs_two_jobs_in_parallel(tmp_path):
    """`-m hydra/launcher=joblib hydra.launcher.n_jobs=2`: two seeds at once, each in its own worker, each with
    cores // 2 threads (joblib's OMP_NUM_THREADS), each with its own folder and summary."""
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "stages/policy.py", "-m", "seed=0,1", "hydra/launcher=joblib",
                        "hydra.launcher.n_jobs=2", "preset=smoke", "epochs=1", "algo.steps_per_epoch=3",
                        "eval_episodes=2", f"data_dir={tmp_path}/data", f"checkpoint_dir={tmp_path}/ck",
                        f"log_dir={tmp_path}/runs", f"hydra.sweep.dir={tmp_path}/h", "progress=false"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Joblib" in r.stdout + r.stderr  # the launcher named in Hydra's log
    threads = max(1, os.cpu_count() // 2)
    for seed in (0, 1):
        summary = json.loads((tmp_path / f"ck/maze2d-umaze/policy/td3bc-none/seed{seed}/summary.json").read_text())
        assert summary["seed"] == seed and summary["threads"] == threads and len(summary["evaluations"]) == 1


def test_slurm_launcher_composes():
    """`hydra/launcher=submitit_slurm` is installed and composes with a sweep (SLURM itself is not here)."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("policy", overrides=["+experiment=maze_comparison", "hydra/launcher=submitit_slurm",
                                           "hydra.launcher.cpus_per_task=4"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.cpus_per_task == 4


def test_threads_follow_the_setting_and_slurm(monkeypatch):
    from dydiff.lightning.trainer import set_threads

    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
        assert set_threads(None) == 2
        with pytest.raises(ValueError, match="threads=0"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)
