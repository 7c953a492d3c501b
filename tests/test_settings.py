"""Bad settings fail at start-up, before any data is loaded, naming the key."""

import json

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir

from dydiff.settings import SettingsError


def compose_stage(name, tmp, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=["preset=smoke", f"data_dir={tmp}/data", f"checkpoint_dir={tmp}/ck",
                                        f"log_dir={tmp}/runs", "progress=false", *overrides])


@pytest.mark.parametrize("overrides, key", [
    (["synth=dydiff", "synth.keep=1.5"], "synth.keep=1.5"),
    (["synth=dydiff", "synth.keep=0"], "synth.keep=0"),
    (["real_ratio=1.7"], "real_ratio=1.7"),
    (["synth=dydiff", "synth.iterations=-1"], "synth.iterations=-1"),
    (["synth=dydiff", "synth.temperature=0"], "synth.temperature=0"),
    (["synth=dydiff", "horizon=0"], "synth.horizon=0"),
    (["synth=dydiff", "synth.filter=topk"], "synth.filter='topk'"),
    (["synth=real_env", "num_trajectories=1", "trainer=ddp_cpu"], "synth.num_trajectories=1"),
    (["synth=synther", "synth.real_ratio=-0.1"], "synth.real_ratio=-0.1"),
    (["protocol=paper"], "protocol='paper'"),
    (["seeds=[2,2]"], "seeds=[2, 2]: must be null or a list of distinct"),
])
def test_policy_stage_refuses_bad_settings_before_loading_data(tmp_path, overrides, key):
    from stages.policy import run

    with pytest.raises(SettingsError, match=key.replace("[", r"\[")):
        run(compose_stage("policy", tmp_path, *overrides))
    assert not (tmp_path / "data").exists()  # nothing was built or loaded


def test_policy_stage_refuses_a_horizon_other_than_the_stage_one_models(tmp_path):
    from stages.policy import run

    pre = tmp_path / "ck/maze2d-umaze/pretrain"
    pre.mkdir(parents=True)
    (pre / "manifest.json").write_text(json.dumps({"horizon": 32}))
    with pytest.raises(SettingsError, match="trained with L = 32"):
        run(compose_stage("policy", tmp_path, "synth=dydiff"))


def test_pretrain_stage_refuses_bad_settings(tmp_path):
    from stages.pretrain import run

    with pytest.raises(SettingsError, match="horizon=0"):
        run(compose_stage("pretrain", tmp_path, "horizon=0"))
    with pytest.raises(SettingsError, match="unknown model"):
        run(compose_stage("pretrain", tmp_path, "models=[denoiser,world_model]"))
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("algo, synth, steps", [("td3bc", "none", 250), ("td3bc", "dydiff", 500),
                                                ("diffql", "none", 500), ("diffql", "dydiff", 250),
                                                ("cql", "none", 500), ("cql", "synther", 500)])
def test_the_official_protocol_takes_the_official_codes_epoch_lengths(tmp_path, algo, synth, steps):
    from omegaconf import OmegaConf

    from stages.policy import steps_per_epoch

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        official = OmegaConf.to_container(compose("policy", overrides=[f"algo={algo}", f"synth={synth}",
                                                                       "protocol=official"]), resolve=True)
        equal = OmegaConf.to_container(compose("policy", overrides=[f"algo={algo}", f"synth={synth}"]), resolve=True)
    assert steps_per_epoch(official) == steps and steps_per_epoch(equal) == equal["algo"]["steps_per_epoch"]
