import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir

from dydiff.errors import DatasetError


def compose_pretrain(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("pretrain", overrides=["preset=smoke", f"data_dir={tmp_path}/data",
                                              f"checkpoint_dir={tmp_path}/ck", f"log_dir={tmp_path}/runs",
                                              "progress=false", *overrides])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from stages.pretrain import run

    tmp = tmp_path_factory.mktemp("pretrain")
    result = run(compose_pretrain(tmp))
    return tmp, result


def test_stage_writes_checkpoints_manifest_logs_and_diagnostic(smoke_run):
    tmp, result = smoke_run
    out = tmp / "ck" / "maze2d-umaze" / "pretrain"
    for name in ("denoiser", "dynamics", "reward"):
        assert (out / name / "last.ckpt").exists() and (out / name / "best.ckpt").exists()
        assert list((tmp / "runs" / "maze2d-umaze" / "pretrain" / name).glob("events.out.tfevents*"))
        ckpt = torch.load(out / name / "last.ckpt", weights_only=True)  # plain values only
        assert ckpt["global_step"] == 6  # 2 epochs × 3 steps (smoke preset)
        assert not list((out / name).glob("*.tmp"))
    assert "val_sigma/0.01" in result["metrics"]["denoiser"]
    assert (out / "rollout_error.json").exists()
    rep = result["rollout_error"]
    assert rep["horizon"] == 16 and rep["windows"] == 8
    assert len(rep["models"]["ensemble"]["e"]) == 17 and rep["models"]["edm"]["e"][0] == 0.0
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["normalizer"]["kind"] == "minmax" and "torch" in manifest["versions"]
    assert manifest["models"]["denoiser"]["module"]["network"] == "unet"


def test_reloaded_checkpoint_gives_identical_outputs(smoke_run):
    from dydiff.checkpoints import load_module, load_pretrained
    from dydiff.sources import load_dataset

    tmp, _ = smoke_run
    out = tmp / "ck" / "maze2d-umaze" / "pretrain"
    ds = load_dataset("maze2d-umaze", data_dir=tmp / "data", size=20000, ref_episodes=4)
    pre = load_pretrained(out, ds)
    assert all(not p.requires_grad for p in pre.denoiser.parameters())
    s0 = torch.as_tensor(ds.observations[:5])
    acts = torch.as_tensor(ds.actions[:16])[None].expand(5, 16, 2)
    a = pre.denoiser.sample(s0, acts, torch.Generator().manual_seed(3))
    b = load_module(out / "denoiser" / "last.ckpt").model.eval().sample(s0, acts, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(a[:, 0], s0)
    other = torch.as_tensor(ds.actions[100:116])[None].expand(5, 16, 2)
    assert not torch.allclose(a, pre.denoiser.sample(s0, other, torch.Generator().manual_seed(3)))
    nxt = pre.dynamics.step(s0, acts[:, 0], torch.Generator().manual_seed(0))
    assert nxt.shape == (5, 4) and torch.equal(nxt, pre.dynamics.step(s0, acts[:, 0], torch.Generator().manual_seed(0)))
    assert pre.reward(s0, acts[:, 0]).shape == (5,)


def test_fingerprint_mismatch_is_refused(smoke_run):
    from dydiff.checkpoints import load_pretrained
    from dydiff.sources import load_dataset

    tmp, _ = smoke_run
    out = tmp / "ck" / "maze2d-umaze" / "pretrain"
    other = load_dataset("maze2d-umaze", data_dir=tmp / "data", size=20000, seed=1, ref_episodes=4)
    with pytest.raises(DatasetError, match="trained on dataset .* not on this one"):
        load_pretrained(out, other)
    from stages.pretrain import run

    with pytest.raises(DatasetError, match="holds models of another dataset"):
        run(compose_pretrain(tmp, "dataset.seed=1"))


def test_resume_continues_and_matches_uninterrupted(tmp_path):
    from stages.pretrain import run

    common = ["models=[denoiser,dynamics]", "rollout_error.enabled=false"]
    run(compose_pretrain(tmp_path / "a", *common, "denoiser.trainer.max_epochs=3", "dynamics.trainer.max_epochs=3"))
    run(compose_pretrain(tmp_path / "b", *common))  # 2 epochs, "interrupted"
    run(compose_pretrain(tmp_path / "b", *common, "denoiser.trainer.max_epochs=3", "dynamics.trainer.max_epochs=3",
                         "resume=true"))
    for name in ("denoiser", "dynamics"):
        a = torch.load(tmp_path / "a/ck/maze2d-umaze/pretrain" / name / "last.ckpt", weights_only=True)
        b = torch.load(tmp_path / "b/ck/maze2d-umaze/pretrain" / name / "last.ckpt", weights_only=True)
        assert b["global_step"] == a["global_step"] == 9
        for k in a["state_dict"]:
            assert torch.equal(a["state_dict"][k], b["state_dict"][k]), (name, k)


@pytest.mark.slow
def test_cli(tmp_path):
    r = subprocess.run([sys.executable, "stages/pretrain.py", "preset=smoke", f"data_dir={tmp_path}/data",
                        f"checkpoint_dir={tmp_path}/ck", f"log_dir={tmp_path}/runs", f"hydra.run.dir={tmp_path}/h",
                        "progress=false"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rollout error at t = L = 16" in r.stdout
    assert (tmp_path / "ck/maze2d-umaze/pretrain/denoiser/last.ckpt").exists()


def test_rollout_error_with_policy_actions(smoke_run):
    """The paper's protocol: a stage-2 policy acts in the ensemble; the simulator replays those actions."""
    from stages.analyze import run as analyze
    from stages.policy import run as policy

    tmp, _ = smoke_run
    common = [f"data_dir={tmp}/data", f"checkpoint_dir={tmp}/ck", f"log_dir={tmp}/runs", "preset=smoke"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        policy(compose("policy", overrides=[*common, "progress=false"]))
        ckpt = tmp / "ck/maze2d-umaze/policy/td3bc-none/seed0/last.ckpt"
        rep = analyze(compose("analyze", overrides=[*common, f"policy={ckpt}", "windows=5", "cost_trajectories=64",
                                                    "compare={n2: {path: stage, sampler: {num_steps: 2}}}"]))
    assert rep["actions"] == "policy" and rep["windows"] == 5
    assert rep["models"]["ensemble"]["e"][0] == 0.0 and len(rep["models"]["ensemble"]["e"]) == 17
    assert rep["models"]["n2"]["e"] != rep["models"]["edm"]["e"]  # the stage's weights with 2 sampler steps
    assert rep["models"]["n2"]["spread"][0] == 0.0 < rep["models"]["n2"]["spread"][-1]


@pytest.mark.parametrize("mean_steps", [4, 7])  # μ frozen before the interruption at 6 steps, or after
def test_residual_resume_matches_uninterrupted(tmp_path, mean_steps):
    from stages.pretrain import run

    common = ["models=[denoiser]", "rollout_error.enabled=false", "denoiser.module.kind=residual",
              f"denoiser.module.mean_steps={mean_steps}"]
    common.append("denoiser.trainer.max_epochs=3")
    run(compose_pretrain(tmp_path / "a", *common))
    run(compose_pretrain(tmp_path / "b", *common, "+denoiser.trainer.max_steps=6"))  # "interrupted" after 2 epochs
    run(compose_pretrain(tmp_path / "b", *common, "resume=true"))
    a, b = (torch.load(tmp_path / f"{r}/ck/maze2d-umaze/pretrain/denoiser/last.ckpt", weights_only=True)
            for r in "ab")
    assert b["global_step"] == a["global_step"] == 9
    assert not torch.equal(a["state_dict"]["model.rho"], torch.ones_like(a["state_dict"]["model.rho"]))
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


def test_residual_runs_through_both_stages(tmp_path):
    """The smoke preset with kind=residual: stage 1 (with the diagnostic) and DyDiff's synthesis in stage 2."""
    from stages.policy import run as policy
    from stages.pretrain import run

    result = run(compose_pretrain(tmp_path, "denoiser.module.kind=residual", "denoiser.module.network=mlp"))
    rep = result["rollout_error"]
    assert rep["models"]["residual"]["e"][0] == 0.0 and len(rep["models"]["residual"]["spread"]) == 17
    assert rep["models"]["residual"]["spread"][-1] > 0 and rep["models"]["residual"]["seconds"] > 0
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        summary = policy(compose("policy", overrides=[
            "preset=smoke", f"data_dir={tmp_path}/data", f"checkpoint_dir={tmp_path}/ck", f"log_dir={tmp_path}/runs",
            "progress=false", "synth=dydiff", "epochs=1"]))
    assert len(summary["evaluations"]) == 1
    ckpt = torch.load(tmp_path / "ck/maze2d-umaze/policy/td3bc-dydiff/seed0/last.ckpt", weights_only=True)
    assert len(ckpt["synthetic"]["rows"]) > 0


def test_residual_mean_steps_must_leave_residual_steps(tmp_path):
    from dydiff.settings import SettingsError
    from stages.pretrain import run

    with pytest.raises(SettingsError, match="denoiser.module.mean_steps"):
        run(compose_pretrain(tmp_path, "denoiser.module.kind=residual", "denoiser.module.mean_steps=6"))
