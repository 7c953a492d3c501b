"""One contract for every registered synthesizer (d3rlpy's shared-tester habit): shapes and units of what it
makes, determinism for a fixed generator, the due schedule, to(device), and a save/restore round trip."""

import numpy as np
import pytest
import torch

from dydiff.checkpoints import Pretrained
from dydiff.stage1 import DenoiserModule, DynamicsModule, RewardModule, Stage1Data, SynthERModule
from dydiff.synthesis import build_synthesizer, synthesizers

L = 8
W = torch.tensor([[0.5, -0.2], [0.1, 0.4], [-0.3, 0.2], [0.2, 0.1]])
# per registered name: its config (as conf/synth/<name>.yaml would give) and the epochs it is due in 0..9
CONTRACT = {
    "dydiff": ({"horizon": L, "iterations": 1, "keep": 0.5, "start_epoch": 2, "every": 3}, [2, 5, 8]),
    "real_env": ({"horizon": L, "envs": 4, "start_epoch": 2, "every": 3}, [2, 5, 8]),
    "synther": ({"start_epoch": 2}, [2]),
    "synther_filtered": ({"filter": "softmax", "keep": 0.5, "start_epoch": 2}, [2]),
}


def act(obs):
    return torch.tanh(obs @ W)


@pytest.fixture(scope="module")
def pretrained(umaze_ds):
    """Small untrained stage-1 models of the right shapes (the contract does not depend on their quality)."""
    torch.manual_seed(0)
    data = Stage1Data(umaze_ds, np.array([0]), horizon=L)
    dyn = DynamicsModule.build(data, members=3, elites=2, hidden=16, layers=2, weight_decay=(0, 0, 0)).model
    dyn.set_input_stats(*(torch.as_tensor(x) for x in (umaze_ds.observations, umaze_ds.actions)))
    models = {"denoiser": DenoiserModule.build(data, network="mlp", network_kwargs={"mlp": {"width": 16, "depth": 1}},
                                               sampler={"num_steps": 3}).model,
              "dynamics": dyn, "reward": RewardModule.build(data, hidden=16, layers=1).model,
              "synther": SynthERModule.build(data, width=16, depth=1, sampler={"num_steps": 3}).model}
    return Pretrained({k: m.eval().requires_grad_(False) for k, m in models.items()})


def make(name, umaze_ds, pretrained, tmp_path):
    return build_synthesizer({"name": name, **CONTRACT[name][0]}, umaze_ds, pretrained, tmp_path / "cache")


def test_the_contract_covers_every_registered_synthesizer():
    assert set(CONTRACT) == set(synthesizers())


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_synthesizer_contract(name, umaze_ds, pretrained, tmp_path):
    s = make(name, umaze_ds, pretrained, tmp_path)
    assert [e for e in range(10) if s.due(e)] == CONTRACT[name][1]
    assert s.to("cpu") is s
    n = 16
    out, metrics = s.generate(act, n, torch.Generator().manual_seed(1))
    # shapes and units: raw-unit transitions, actions in the box, done in {0, 1}
    m = len(out.obs)
    assert m > 0 and out.obs.shape == out.next_obs.shape == (m, 4) and out.act.shape == (m, 2)
    assert out.rew.shape == out.done.shape == (m,) and metrics["transitions"] == m
    assert all(x.dtype == torch.float32 and x.device.type == "cpu" for x in out)
    assert bool(((out.done == 0) | (out.done == 1)).all()) and float(out.act.abs().max()) <= 1.0
    if hasattr(s, "horizon"):  # trajectories: at most ⌊η·n⌋·L transitions, each starting at a dataset state
        assert m <= int(s.keep * n) * L
        starts = {r.tobytes() for r in umaze_ds.observations}
        assert out.obs[0].numpy().tobytes() in starts
        for i in range(m - 1):  # whole trajectories, one after another: each row continues the last or starts anew
            assert torch.equal(out.obs[i + 1], out.next_obs[i]) or out.obs[i + 1].numpy().tobytes() in starts
    # determinism: the same generator seed gives the same transitions; another seed, others
    again, metrics2 = s.generate(act, n, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(out, again, strict=True)) and metrics == metrics2
    other, _ = s.generate(act, n, torch.Generator().manual_seed(2))
    assert len(other.obs) != m or not torch.equal(other.obs, out.obs)
    # save/restore: the state is plain values, and a fresh instance given it makes the same transitions
    path = tmp_path / "state.pt"
    torch.save(s.state_dict(), path)
    fresh = make(name, umaze_ds, pretrained, tmp_path)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    back, _ = fresh.to("cpu").generate(act, n, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(out, back, strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_synthesizer_runs_on_the_gpu(name, umaze_ds, pretrained, tmp_path):
    s = make(name, umaze_ds, pretrained, tmp_path).to("cuda")
    w = W.cuda()
    out, _ = s.generate(lambda obs: torch.tanh(obs.cuda() @ w), 8, torch.Generator("cuda").manual_seed(1))
    assert all(x.device.type == "cuda" for x in out)


class Exploding(torch.nn.Module):
    """Dynamics that triple the state each step, NaN where s0's x < 2 (the U's upper arm and its bend)."""

    def step(self, s, a, generator=None, deterministic=True):
        out = 3 * s
        out[s[:, 0] < 2] = float("nan")
        return out


def test_dydiff_drops_non_finite_trajectories_and_keeps_the_rest_in_the_data_box(umaze_ds, pretrained, tmp_path):
    pre = Pretrained({**pretrained.models, "dynamics": Exploding()})
    s = build_synthesizer({"name": "dydiff", "horizon": L, "iterations": 1, "keep": 1.0}, umaze_ds, pre)
    g = torch.Generator().manual_seed(4)
    rows = torch.randint(len(umaze_ds.observations), (32,), generator=torch.Generator().manual_seed(4))
    bad = int((torch.as_tensor(umaze_ds.observations)[rows, 0] < 2).sum())
    out, metrics = s.generate(act, 32, g)
    assert 0 < bad < 32 and metrics["dropped_nonfinite"] == bad and metrics["trajectories_kept"] == 32 - bad
    assert len(out.obs) == (32 - bad) * L and bool(torch.isfinite(out.obs).all())
    low, high = umaze_ds.observations.min(0), umaze_ds.observations.max(0)
    for x in (out.obs, out.next_obs):  # inside the box of observations and next observations
        assert bool((x >= torch.as_tensor(np.minimum(low, umaze_ds.next_observations.min(0)))).all())
        assert bool((x <= torch.as_tensor(np.maximum(high, umaze_ds.next_observations.max(0)))).all())
    assert 0 < metrics["clipped_state_share"] <= 1


def test_synther_sampling_shows_its_progress_per_chunk_and_keeps_its_samples(capsys):
    """The one-off 200k-sample run takes minutes on a CPU: a line per chunk in a log, and the same samples as
    the model's own chunked sampling (the same draws in the same order)."""
    from dydiff.diffusion.transitions import TransitionModel
    from dydiff.synthesis.synther import sample_shown
    m = TransitionModel(2, 1, [0.0] * 7, [1.0] * 7, width=16, depth=1, sampler={"num_steps": 2})
    quiet = m.sample(10, torch.Generator().manual_seed(3), chunk=4)
    capsys.readouterr()
    shown = sample_shown(m, 10, torch.Generator().manual_seed(3), chunk=4)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("SynthER: sampling 10 transitions")]
    assert [x.split(": ")[2].split(" ")[0] for x in lines] == ["1/3", "2/3", "3/3"]
    assert all(torch.equal(a, b) for a, b in zip(quiet, shown, strict=True)) and quiet.obs.shape == (10, 2)
