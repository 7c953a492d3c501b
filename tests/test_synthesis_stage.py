
import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dydiff.errors import DatasetError


def compose_stage(name, tmp, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=["preset=smoke", f"data_dir={tmp.parent}/data", f"checkpoint_dir={tmp}/ck",
                                        f"log_dir={tmp}/runs", "progress=false", *overrides])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Stage-1 smoke models of the smoke maze2d-umaze, trained once."""
    from stages.pretrain import run

    tmp = tmp_path_factory.mktemp("syn") / "pre"
    run(compose_stage("pretrain", tmp, "rollout_error.enabled=false", "models=[denoiser,dynamics,reward,synther]"))
    return tmp / "ck/maze2d-umaze/pretrain"


def policy(tmp, pre, *overrides):
    from stages.policy import run

    return run(compose_stage("policy", tmp, f"pretrain_dir={pre}", *overrides))


@pytest.mark.parametrize("synth", ["dydiff", "real_env"])
def test_policy_stage_with_synthesis_fills_the_buffer_and_logs(tmp_path, pretrained, synth):
    summary = policy(tmp_path, pretrained, f"synth={synth}", "epochs=2")
    assert len(summary["evaluations"]) == 2
    run = tmp_path / f"ck/maze2d-umaze/policy/td3bc-{synth}/seed0"
    ckpt = torch.load(run / "last.ckpt", weights_only=True)
    tb = EventAccumulator(str(tmp_path / f"runs/maze2d-umaze/policy/td3bc-{synth}/seed0")).Reload()
    made = [e.value for e in tb.Scalars("synth/transitions")]
    kept = [e.value for e in tb.Scalars("synth/trajectories_kept")]
    keep = 0.6 if synth == "dydiff" else 1.0
    assert kept == [int(keep * 32)] * 2  # η·B_r each round (smoke B_r = 32)
    assert len(ckpt["synthetic"]["rows"]) == sum(made) == [e.value for e in tb.Scalars("synth/buffer_size")][-1]
    assert 0 < sum(made) <= 2 * int(keep * 32) * 16  # at most L = 16 transitions a trajectory
    if synth == "dydiff":  # a maze never terminates and nothing else cuts a trajectory: all L transitions of each
        assert made == [int(keep * 32) * 16] * 2
    assert [e.step for e in tb.Scalars("synth/seconds")] == [0, 5]  # rounds at the start of epochs 0 and 1


@pytest.mark.parametrize("synth", ["synther", "synther_filtered"])
def test_synther_generates_once_caches_and_fills_the_buffer(tmp_path, pretrained, synth):
    summary = policy(tmp_path / "a", pretrained, f"synth={synth}", "epochs=2")
    assert summary["real_ratio"] == 0.0  # SynthER's offline protocol: synthetic data alone
    assert policy(tmp_path / "c", pretrained, f"synth={synth}", "synth.real_ratio=0.6", "epochs=1")["real_ratio"] == 0.6
    (cache,) = (pretrained / "synther").glob("samples-500-g*.pt")  # keyed by the round generator's seed
    stamp = cache.stat().st_mtime_ns
    policy(tmp_path / "b", pretrained, f"synth={synth}", "epochs=1")  # a second run reuses the cache
    assert cache.stat().st_mtime_ns == stamp
    path = f"ck/maze2d-umaze/policy/td3bc-{synth}/seed0/last.ckpt"
    a, b = (torch.load(tmp_path / x / path, weights_only=True)["synthetic"]["rows"] for x in "ab")
    n = 500 if synth == "synther" else int(0.6 * 500)  # SynthER-f keeps η of the samples
    assert a.shape == (n, 2 * 4 + 2 + 2) and torch.equal(a, b)
    assert a[:, 4:6].abs().max() <= 1 and set(a[:, -1].unique().tolist()) <= {0.0, 1.0}  # actions, done
    tb = EventAccumulator(str(tmp_path / f"a/runs/maze2d-umaze/policy/td3bc-{synth}/seed0")).Reload()
    assert [e.step for e in tb.Scalars("synth/seconds")] == [0]  # generated once, not every epoch
    if synth == "synther_filtered":  # the filter prefers high predicted reward
        assert tb.Scalars("synth/predicted_reward_kept")[0].value > tb.Scalars("synth/predicted_reward_all")[0].value


def test_single_step_ablation_and_hardmax_run(tmp_path, pretrained):
    summary = policy(tmp_path, pretrained, "synth=dydiff", "synth.iterations=0", "synth.filter=hardmax", "epochs=1",
                     "tag=M0")
    assert (tmp_path / "ck/maze2d-umaze/policy/td3bc-dydiff-M0/seed0/summary.json").exists()
    assert (summary["dataset"], summary["algo"], summary["seed"], summary["tag"]) == ("maze2d-umaze", "td3bc", 0, "M0")
    assert summary["synth"]["iterations"] == 0 and summary["synth"]["filter"] == "hardmax"
    tb = EventAccumulator(str(tmp_path / "runs/maze2d-umaze/policy/td3bc-dydiff-M0/seed0")).Reload()
    assert "synth/state_change_iter1" not in tb.Tags()["scalars"]
    assert [e.value for e in tb.Scalars("synth/transitions")] == [int(0.6 * 32) * 16]  # no padding, no terminal
    assert len(summary["evaluations"]) == 1


def test_resume_with_dydiff_restores_the_buffer_and_matches(tmp_path, pretrained):
    policy(tmp_path / "a", pretrained, "synth=dydiff", "epochs=3")
    policy(tmp_path / "b", pretrained, "synth=dydiff", "epochs=2")
    policy(tmp_path / "b", pretrained, "synth=dydiff", "epochs=3", "resume=true")
    path = "ck/maze2d-umaze/policy/td3bc-dydiff/seed0/last.ckpt"
    a, b = (torch.load(tmp_path / x / path, weights_only=True) for x in "ab")
    assert torch.equal(a["synthetic"]["rows"], b["synthetic"]["rows"]) and a["updates"] == b["updates"] == 15
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


def test_stage_two_refuses_models_of_another_dataset(tmp_path, pretrained):
    with pytest.raises(DatasetError, match="not on this one"):
        policy(tmp_path, pretrained, "synth=dydiff", "dataset.size=5000")


@pytest.mark.slow
def test_ddp_ranks_synthesise_their_share_into_their_own_buffers(tmp_path, pretrained):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "stages/policy.py", "preset=smoke", "trainer=ddp_cpu", "synth=dydiff",
                        "eval_episodes=2", f"data_dir={tmp_path.parent}/data", f"checkpoint_dir={tmp_path}/ck",
                        f"log_dir={tmp_path}/runs", f"pretrain_dir={pretrained}", f"hydra.run.dir={tmp_path}/h",
                        "progress=false"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "ck/maze2d-umaze/policy/td3bc-dydiff/seed0"
    rank0 = torch.load(run / "last.ckpt", weights_only=True)["synthetic"]["rows"]
    rank1 = torch.load(run / "synthetic-rank1.pt", weights_only=True)["rows"]
    tb = EventAccumulator(str(tmp_path / "runs/maze2d-umaze/policy/td3bc-dydiff/seed0")).Reload()
    assert [e.value for e in tb.Scalars("synth/trajectories_kept")] == [int(0.6 * 16)] * 2  # B_r / 2 per rank
    assert len(rank0) == sum(e.value for e in tb.Scalars("synth/transitions"))
    assert 0 < len(rank1) and not torch.equal(rank0[: min(len(rank0), len(rank1))], rank1[: min(len(rank0),
                                                                                                 len(rank1))])


def test_maze_images_and_legal_shares_in_tensorboard(tmp_path, pretrained):
    """figure_every=2 with rounds at epochs 0, 1, 2: images at rounds 0 and 2 only; legal shares every round,
    one per iteration (M = 1 for mazes: the ensemble's and the refined)."""
    policy(tmp_path, pretrained, "synth=dydiff", "synth.figure_every=2", "epochs=3")
    tb = EventAccumulator(str(tmp_path / "runs/maze2d-umaze/policy/td3bc-dydiff/seed0"), size_guidance={"images": 0})
    tb.Reload()
    images = tb.Images("synth/maze_trajectories")
    assert [e.step for e in images] == [0, 10] and images[0].width > images[0].height > 100
    for m in (0, 1):
        shares = [e.value for e in tb.Scalars(f"synth/legal_share_iter{m}")]
        assert len(shares) == 3 and all(0 <= x <= 1 and round(x * 32) == x * 32 for x in shares)  # k of B_r = 32
    assert "synth/legal_share_iter2" not in tb.Tags()["scalars"]


def test_iterations_analysis_against_the_simulator(tmp_path, pretrained):
    """analyze.py iterations on a smoke policy: blend = 0 keeps the states, so the relabelled actions equal the
    ensemble rollout's and every iteration's total MSE is exactly iteration 0's; blend = 1 changes them."""
    from stages.analyze import run

    policy(tmp_path, pretrained, "synth=dydiff", "epochs=1")
    ckpt = tmp_path / "ck/maze2d-umaze/policy/td3bc-dydiff/seed0/last.ckpt"
    reports = {}
    for blend in (0.0, 1.0):
        out = tmp_path / f"an{blend}"
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("analyze", overrides=["preset=smoke", f"data_dir={tmp_path.parent}/data", "mode=iterations",
                                                f"policy={ckpt}", "iterations=2", "windows=6", f"blend={blend}",
                                                f"pretrain_dir={pretrained}", f"out={out}"])
        reports[blend] = run(cfg)
        assert {p.name for p in out.iterdir()} == {"refinement_error.json", "refinement_error.png",
                                                   "refinement_trajectories.png"}
    kept = [r["total_mse"] for r in reports[0.0]["iterations"]]
    assert len(kept) == 3 and kept[0] > 0 and kept[0] == kept[1] == kept[2]
    moved = [r["total_mse"] for r in reports[1.0]["iterations"]]
    assert moved[0] == kept[0] and moved[1] != moved[0]
    assert all(0 <= r["legal"] <= 6 and r["true_legal"] == 6 for r in reports[1.0]["iterations"])


def test_two_seeds_each_get_their_own_policys_synthetic_data(tmp_path, pretrained):
    """seeds=[0,1] with DyDiff: one round per seed into its own buffer; at epoch 0 seed 1's buffer is bit for bit
    the single-seed run's (the same initial policy, the same round generator)."""
    policy(tmp_path / "k", pretrained, "synth=dydiff", "seeds=[0,1]", "epochs=1")
    policy(tmp_path / "s", pretrained, "synth=dydiff", "seed=1", "epochs=1")
    group = torch.load(tmp_path / "k/ck/maze2d-umaze/policy/td3bc-dydiff/seeds-0-1/last.ckpt", weights_only=True)
    single = torch.load(tmp_path / "s/ck/maze2d-umaze/policy/td3bc-dydiff/seed1/last.ckpt", weights_only=True)
    assert torch.equal(group["synthetic/seed1"]["rows"], single["synthetic"]["rows"])
    assert not torch.equal(group["synthetic/seed0"]["rows"], group["synthetic/seed1"]["rows"])
    tb = EventAccumulator(str(tmp_path / "k/runs/maze2d-umaze/policy/td3bc-dydiff/seeds-0-1")).Reload()
    assert {"seed0/synth/transitions", "seed1/synth/transitions"} <= set(tb.Tags()["scalars"])


class _Log:
    def __init__(self):
        self.logged = {}

    def scalars(self, d):
        self.logged.update(d)

    def image(self, tag, img):
        self.logged[tag] = img.shape


def test_batched_synthesis_gives_each_seed_its_own_policys_transitions(tmp_path, pretrained):
    """synth.batched=true with seeds=[0,1,2]: one rollout and one DM call over 3 × B_r trajectories, and every
    action in seed k's buffer is seed k's policy's action on its state (a_i = π_k(s_i), Eq. 8), not another seed's."""
    from omegaconf import OmegaConf

    from dydiff.synthesis.round import run_batched
    from stages.policy import build

    cfg = compose_stage("policy", tmp_path, f"pretrain_dir={pretrained}", "synth=dydiff", "seeds=[0,1,2]",
                        "synth.batched=true")
    _, module, _, _ = build(OmegaConf.to_container(cfg, resolve=True))
    for r in module.rounds:
        r.setup("cpu")
    calls = []
    dm = module.rounds[0].synthesizer.denoiser
    sample = dm.sample
    dm.sample = lambda s0, *a, **kw: calls.append(len(s0)) or sample(s0, *a, **kw)
    log = _Log()
    metrics = run_batched(module.rounds, 0, lambda obs, det, g, k: module.rollout_act(obs, det, g, member=k), log)
    assert calls == [3 * 32] * module.rounds[0].synthesizer.iterations  # smoke B_r = 32, one call per iteration
    box = module.rounds[0].synthesizer.box
    with torch.no_grad():
        for k, r in enumerate(module.rounds):
            b = r.buffer.split(r.buffer.rows)
            assert len(b.obs) == metrics[k]["transitions"] == int(0.6 * 32) * 16
            own = torch.clamp(module.rollout_act(b.obs, True, None, member=k), box.a_low, box.a_high)
            other = torch.clamp(module.rollout_act(b.obs, True, None, member=(k + 1) % 3), box.a_low, box.a_high)
            assert torch.allclose(b.act, own, atol=1e-5)
            assert (b.act - other).abs().max() > 1e-2
            assert f"seed{k}/synth/legal_share_iter0" in log.logged
    policy(tmp_path / "b", pretrained, "synth=dydiff", "seeds=[0,1]", "synth.batched=true", "epochs=1")
    ck = torch.load(tmp_path / "b/ck/maze2d-umaze/policy/td3bc-dydiff/seeds-0-1/last.ckpt", weights_only=True)
    rows = [ck[f"synthetic/seed{k}"]["rows"] for k in (0, 1)]
    assert rows[0].shape == rows[1].shape == (int(0.6 * 32) * 16, rows[0].shape[1]) and not torch.equal(*rows)
