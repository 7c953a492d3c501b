import subprocess
import sys

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir


def test_collect_in_process(tmp_path, capsys):
    import re

    from stages.collect import run

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("collect", overrides=["preset=smoke", f"data_dir={tmp_path}"])
    out = run(cfg)
    assert out["summary"]["transitions"] == 20000
    assert out["controller"]["score_mean"] > out["random"]["score_mean"] + 50
    line = re.search(r"measured: random ([\d.]+), controller ([\d.]+) \(D4RL 23.85 / 161.86\)", capsys.readouterr().out)
    assert float(line[1]) == pytest.approx(out["random"]["return_mean"], abs=0.01)
    assert float(line[2]) == pytest.approx(out["controller"]["return_mean"], abs=0.01)
    assert len(list((tmp_path / "builtin").glob("maze2d-umaze-20000-*.hdf5"))) == 1
    again = run(cfg)  # cached: the same data
    assert again["summary"]["fingerprint"] == out["summary"]["fingerprint"]


def test_every_dataset_config_composes():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for path in sorted((ROOT / "conf" / "dataset").glob("*.yaml")):
            cfg = compose("collect", overrides=[f"dataset={path.stem}"])
            from dydiff.envs.registry import get_task

            assert get_task(cfg.dataset.task).name == cfg.dataset.task


@pytest.mark.slow
def test_cli(tmp_path):
    r = subprocess.run([sys.executable, "stages/collect.py", "preset=smoke", "dataset=maze2d-medium",
                        f"data_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "5000 transitions" in r.stdout and "normalized score" in r.stdout
