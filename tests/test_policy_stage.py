import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir


def compose_policy(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("policy", overrides=["preset=smoke", f"data_dir={tmp_path.parent}/data",
                                            f"checkpoint_dir={tmp_path}/ck", f"log_dir={tmp_path}/runs",
                                            "progress=false", *overrides])


@pytest.mark.parametrize("algo", ["td3bc", "cql", "diffql"])
def test_resume_gives_the_same_final_parameters(tmp_path, algo):
    from dydiff.algos import load_policy
    from stages.policy import run

    run(compose_policy(tmp_path / "a", f"algo={algo}", "epochs=3"))
    cut = run(compose_policy(tmp_path / "b", f"algo={algo}", "epochs=2"))  # "interrupted" after 2 epochs
    summary = run(compose_policy(tmp_path / "b", f"algo={algo}", "epochs=3", "resume=true"))
    assert (cut["updates"], summary["updates"]) == (10, 15)
    assert summary["wall_s"] > cut["wall_s"] > 0  # the cost sums both sessions (the third epoch alone is shorter)
    path = f"ck/maze2d-umaze/policy/{algo}-none/seed0/last.ckpt"
    a = torch.load(tmp_path / "a" / path, weights_only=True)
    b = torch.load(tmp_path / "b" / path, weights_only=True)
    assert a["updates"] == b["updates"] == 15
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for k in ("epoch", "global_step"):
        assert a[k] == b[k]
    assert len(summary["evaluations"]) == 3 and [e["epoch"] for e in summary["evaluations"]] == [0, 1, 2]
    assert json.loads((tmp_path / "b" / path).with_name("summary.json").read_text()) == summary
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(tmp_path / "a/runs/maze2d-umaze/policy" / f"{algo}-none/seed0")).Reload()
    assert [e.step for e in tb.Scalars("eval/score_mean")] == [5, 10, 15]  # x-axis: gradient updates
    assert [e.value for e in tb.Scalars("eval/score_mean")] == pytest.approx(
        [e["score_mean"] for e in json.loads((tmp_path / "a" / path).with_name("summary.json").read_text())[
            "evaluations"]])
    assert [e.step for e in tb.Scalars("train/critic_loss")] == [0]  # every 50 updates
    m = load_policy(tmp_path / "b" / path)
    obs = torch.randn(4, 4)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    torch.testing.assert_close(m.act(obs, True, g()), load_policy(tmp_path / "a" / path).act(obs, True, g()),
                               rtol=0, atol=0)


def test_td3bc_learns_the_data_and_values_the_goal(tmp_path):
    """preset=smoke data (20k transitions of D4RL's umaze), 4000 updates. That is too few for TD3+BC to beat the
    random policy's return on D4RL's maze2d (CORL: 29.4 after 1M updates), so the test checks what it learns:
    its actions are far nearer the data's than uniform actions are, and its critic values the goal cell above
    the far end of the U."""
    import numpy as np

    from dydiff.algos import load_policy
    from dydiff.sources import load_dataset
    from stages.policy import run

    run(compose_policy(tmp_path, "algo=td3bc", "epochs=8", "eval_every=4", "algo.steps_per_epoch=500",
                       "eval_episodes=4"))
    policy = load_policy(tmp_path / "ck/maze2d-umaze/policy/td3bc-none/seed0/last.ckpt")
    ds = load_dataset("maze2d-umaze", data_dir=tmp_path.parent / "data", size=20000, ref_episodes=4)
    rows = np.random.default_rng(0).choice(len(ds), 2000, replace=False)
    pi = policy.act(ds.observations[rows]).numpy()
    uniform = np.random.default_rng(1).uniform(-1, 1, pi.shape)
    a = ds.actions[rows]
    assert ((pi - a) ** 2).sum(1).mean() < 0.5 * ((uniform - a) ** 2).sum(1).mean()
    goal, far = (ds.task.goal, ds.task.grid.cell_to_xy((3, 1)))
    states = torch.tensor([[*goal, 0.0, 0.0], [*far, 0.0, 0.0]], dtype=torch.float32)
    with torch.no_grad():
        obs_n = policy.norm(states)
        q = policy.critic.both(obs_n[None], policy.policy_action(obs_n)[None])[0].min(0).values
    assert q[0] > q[1] + 1.0, q


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    r = subprocess.run([sys.executable, "stages/policy.py", "preset=smoke", "trainer=ddp_cpu", "eval_episodes=3",
                        f"data_dir={tmp_path}/data", f"checkpoint_dir={tmp_path}/ck", f"log_dir={tmp_path}/runs",
                        f"hydra.run.dir={tmp_path}/h", "progress=false"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr  # every rank's output: no rank may end in an error
    assert "Traceback" not in out and "Error executing job" not in out, out[-3000:]
    assert out.count("normalized score (mean of last 5 evaluations)") == 2  # both ranks finished their run()
    summary = json.loads((tmp_path / "ck/maze2d-umaze/policy/td3bc-none/seed0/summary.json").read_text())
    assert len(summary["evaluations"]) == 2
    ckpt = torch.load(tmp_path / "ck/maze2d-umaze/policy/td3bc-none/seed0/last.ckpt", weights_only=True)
    assert ckpt["updates"] == 10  # each rank does every update on its own batch; gradients are averaged


@pytest.mark.slow
def test_ddp_with_two_seeds_in_one_model(tmp_path):
    """seeds=[0,1] under DDP: every rank updates both seeds on its own batches (gradients averaged per seed), the
    evaluations of each seed are split across ranks and gathered, and each seed gets its own summary."""
    r = subprocess.run([sys.executable, "stages/policy.py", "preset=smoke", "trainer=ddp_cpu", "eval_episodes=3",
                        "seeds=[0,1]", f"data_dir={tmp_path}/data", f"checkpoint_dir={tmp_path}/ck",
                        f"log_dir={tmp_path}/runs", f"hydra.run.dir={tmp_path}/h", "progress=false"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "Traceback" not in out and out.count("normalized score (mean of last 5 evaluations)") == 4
    runs = tmp_path / "ck/maze2d-umaze/policy/td3bc-none"
    for seed in (0, 1):
        summary = json.loads((runs / f"seed{seed}/summary.json").read_text())
        assert summary["seed"] == seed and len(summary["evaluations"]) == 2
    ckpt = torch.load(runs / "seeds-0-1/last.ckpt", weights_only=True)
    assert ckpt["updates"] == 10 and len(ckpt["evaluations/seed1"]) == 2


def test_per_dataset_tuning_from_config_files(tmp_path):
    """conf/tuning/<algo>_<dataset>.yaml applies the reference's per-dataset values; the command line wins."""
    assert compose_policy(tmp_path, "algo=diffql", "dataset=hopper-medium-replay-v2").algo.kwargs.grad_norm == 4.0
    assert compose_policy(tmp_path, "algo=diffql", "dataset=minari-walker2d-medium").algo.kwargs.grad_norm == 1.0
    assert compose_policy(tmp_path, "algo=diffql", "dataset=halfcheetah-medium-v2",
                          "algo.kwargs.grad_norm=3").algo.kwargs.grad_norm == 3
    assert compose_policy(tmp_path, "algo=diffql").algo.kwargs.grad_norm == 1.0  # no file: the algo default


@pytest.mark.parametrize("algo", ["td3bc", "cql", pytest.param("diffql", marks=pytest.mark.slow)])
def test_seeds_in_one_process_write_per_seed_runs_and_resume_bit_identically(tmp_path, algo):
    """seeds=[0,1]: per-seed folders (summary.json, policy.ckpt), the group's last.ckpt; seed 1 evaluates as its
    single-seed run does; an interrupted 2-seed run resumed ends bit-identical to an uninterrupted one."""
    from dydiff.algos import load_policy
    from stages.policy import run

    both = run(compose_policy(tmp_path / "a", f"algo={algo}", "seeds=[0,1]", "epochs=3"))
    run(compose_policy(tmp_path / "b", f"algo={algo}", "seeds=[0,1]", "epochs=2"))
    resumed = run(compose_policy(tmp_path / "b", f"algo={algo}", "seeds=[0,1]", "epochs=3", "resume=true"))
    single = run(compose_policy(tmp_path / "c", f"algo={algo}", "seed=1", "epochs=3"))
    runs = f"ck/maze2d-umaze/policy/{algo}-none"
    a, b = (torch.load(tmp_path / x / runs / "seeds-0-1/last.ckpt", weights_only=True) for x in "ab")
    assert a["updates"] == b["updates"] == 15 and a.keys() == b.keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    cost = lambda s: {k: v for k, v in s.items() if k != "wall_s"}  # noqa: E731
    assert a["evaluations/seed1"] == b["evaluations/seed1"] and list(map(cost, both)) == list(map(cost, resumed))
    for k, seed in enumerate((0, 1)):
        saved = json.loads((tmp_path / "a" / runs / f"seed{seed}/summary.json").read_text())
        assert saved == both[k] and (saved["seed"], saved["seeds"], len(saved["evaluations"])) == (seed, [0, 1], 3)
    assert [e["score_mean"] for e in both[1]["evaluations"]] == pytest.approx(
        [e["score_mean"] for e in single["evaluations"]], abs=1e-6)
    own = load_policy(tmp_path / "c" / runs / "seed1/last.ckpt")
    one = load_policy(tmp_path / "a" / runs / "seed1/policy.ckpt")  # seed 1 alone, in the single-seed layout
    assert one.cfg.seed == 1 and one.updates == 15
    for n, v in one.state_dict().items():
        torch.testing.assert_close(v, own.state_dict()[n], rtol=1e-4, atol=1e-5)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(tmp_path / f"a/runs/maze2d-umaze/policy/{algo}-none/seeds-0-1")).Reload()
    assert [e.value for e in tb.Scalars("seed1/eval/score_mean")] == pytest.approx(
        [e["score_mean"] for e in both[1]["evaluations"]])
